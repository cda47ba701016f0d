"""Checkpoints of a class-sharded head (angular.distributed.ShardedMarginLoss,
angular.compat.insightface.PartialFC_V2: a module whose ``weight`` holds this rank's classes
``class_range(num_classes, rank, world_size)``) that resume on any number of ranks:

    save_head_shards(folder, head, optimizer)   # every rank: its shard, then rank 0 the manifest
    load_head_shards(folder, head, optimizer)   # every rank, any world size: its classes' rows
    export_head(folder, "head.pt")              # one process: the whole head, one file

Each rank writes ``head-<G>-rank<r>-of-<N>.pt`` (its rows of ``weight``, their optimizer state,
the head's buffers; G counts the saves into the folder), then rank 0 ``head-manifest.pt``, which
names them, and then each rank removes its shard of the save before; each file is written to a
temporary name and renamed, so a crash at any moment leaves a manifest whose shards are there. Loading on another number of ranks
re-splits the class vectors and every optimizer state tensor shaped like them (SGD's momentum,
Adam's moments) by class_range, reading one old shard at a time; scalar optimizer state (Adam's
step) and the buffers (running statistics, alike on every rank) come from the first shard."""

import os
from typing import Dict, Optional

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["save_head_shards", "load_head_shards", "export_head"]

MANIFEST = "head-manifest.pt"


def _shard_name(generation: int, rank: int, world: int) -> str:
    return f"head-{generation}-rank{rank}-of-{world}.pt"


def _save_atomically(value, path: str) -> None:
    temporary = f"{path}.tmp{os.getpid()}"
    torch.save(value, temporary)
    os.replace(temporary, path)


def _classes(head: nn.Module, rank: int, world: int):
    offset, count = torch.ops.angular.class_range(int(head.num_classes), rank, world)
    rows = head.weight.shape[0]
    if count == 0 or rows % count:
        raise ValueError(f"angular: {type(head).__name__}.weight has {rows} rows for {count} classes")
    return offset, count, rows // count


def _row_state(optimizer: Optional[torch.optim.Optimizer], weight: Tensor) -> Dict[str, Tensor]:
    if optimizer is None:
        return {}
    return {k: v for k, v in optimizer.state.get(weight, {}).items() if isinstance(v, Tensor)}


def save_head_shards(folder: str, head: nn.Module, optimizer: Optional[torch.optim.Optimizer] = None,
                     group=None) -> None:
    """Every rank of ``group`` (default: the world): writes its shard of ``head`` (and of its
    ``weight``'s state in ``optimizer``) into ``folder``, then rank 0 the manifest."""
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    offset, count, per_class = _classes(head, rank, world)
    os.makedirs(folder, exist_ok=True)
    # Every rank reads the manifest before rank 0 replaces it (the barrier below).
    last = torch.load(os.path.join(folder, MANIFEST)) if os.path.exists(os.path.join(folder, MANIFEST)) else None
    generation = last["generation"] + 1 if last else 1
    buffers = {name: b.detach().cpu() for name, b in head.named_buffers() if b is not None}
    _save_atomically({"num_classes": int(head.num_classes), "offset": offset, "count": count,
                      "vectors_per_class": per_class, "weight": head.weight.detach().cpu(), "buffers": buffers,
                      "optimizer": {k: v.cpu() for k, v in _row_state(optimizer, head.weight).items()}},
                     os.path.join(folder, _shard_name(generation, rank, world)))
    dist.barrier(group)
    if rank == 0:
        _save_atomically({"world_size": world, "num_classes": int(head.num_classes), "generation": generation,
                          "shards": [_shard_name(generation, r, world) for r in range(world)]},
                         os.path.join(folder, MANIFEST))
    dist.barrier(group)
    if last:  # the manifest names this save's shards now
        for name in last["shards"][rank::world]:
            if os.path.exists(os.path.join(folder, name)):
                os.remove(os.path.join(folder, name))


def _manifest(folder: str, num_classes: Optional[int] = None) -> dict:
    path = os.path.join(folder, MANIFEST)
    if not os.path.exists(path):
        raise FileNotFoundError(f"angular: {path}: no manifest of a sharded head (save_head_shards writes it)")
    manifest = torch.load(path)
    if num_classes is not None and manifest["num_classes"] != num_classes:
        raise ValueError(f"angular: {path}: a head of {manifest['num_classes']} classes, this one has {num_classes}")
    return manifest


def _shards(folder: str, manifest: dict):
    """The shards in rank order, each loaded when asked for and dropped before the next."""
    for name in manifest["shards"]:
        yield torch.load(os.path.join(folder, name), map_location="cpu")


def _copy_overlap(shard: dict, weight: Tensor, state: Dict[str, Tensor], offset: int, count: int,
                  per_class: int) -> None:
    """Copies the rows of the classes [offset, offset + count) that `shard` holds into `weight`
    and the row-shaped tensors of `state`."""
    begin, end = max(offset, shard["offset"]), min(offset + count, shard["offset"] + shard["count"])
    if begin >= end:
        return
    mine = slice((begin - offset) * per_class, (end - offset) * per_class)
    theirs = slice((begin - shard["offset"]) * per_class, (end - shard["offset"]) * per_class)
    weight[mine] = shard["weight"][theirs]
    for k, v in shard["optimizer"].items():
        if v.dim() > 0:
            state[k][mine] = v[theirs]


@torch.no_grad()
def load_head_shards(folder: str, head: nn.Module, optimizer: Optional[torch.optim.Optimizer] = None,
                     group=None) -> None:
    """Every rank of ``group``: loads this rank's classes of the head saved in ``folder`` by any
    number of ranks into ``head`` (and the state of its ``weight`` into ``optimizer``)."""
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    offset, count, per_class = _classes(head, rank, world)
    manifest = _manifest(folder, int(head.num_classes))
    state: Dict[str, Tensor] = {}
    for index, shard in enumerate(_shards(folder, manifest)):
        if shard["vectors_per_class"] != per_class:
            raise ValueError(f"angular: {folder}: {shard['vectors_per_class']} vectors per class, this head has "
                             f"{per_class}")
        if index == 0:
            for name, b in head.named_buffers():
                if b is not None and name in shard["buffers"]:
                    b.copy_(shard["buffers"][name])
            state = {k: (v.clone() if v.dim() == 0 else torch.empty((count * per_class, *v.shape[1:]), dtype=v.dtype))
                     for k, v in shard["optimizer"].items()}
        _copy_overlap(shard, head.weight, state, offset, count, per_class)
        del shard  # before the next one is read
    if optimizer is not None and state:
        optimizer.state[head.weight] = {k: v.to(head.weight.device) if v.dim() > 0 else v for k, v in state.items()}


@torch.no_grad()
def export_head(folder: str, path: str) -> None:
    """Writes the whole head saved in ``folder`` as one state_dict file at ``path`` (``weight``
    [C·K, D] and the buffers), which the single-process module of the same margin loads; reads
    one shard at a time into the output."""
    manifest = _manifest(folder)
    weight: Optional[Tensor] = None
    buffers: Dict[str, Tensor] = {}
    for shard in _shards(folder, manifest):
        rows, per_class = shard["weight"], shard["vectors_per_class"]
        if weight is None:
            weight = torch.empty((manifest["num_classes"] * per_class, rows.shape[1]), dtype=rows.dtype)
            buffers = shard["buffers"]
        weight[shard["offset"] * per_class:(shard["offset"] + shard["count"]) * per_class] = rows
        del shard, rows  # before the next one is read
    _save_atomically({"weight": weight, **buffers}, path)
