"""The processes under torchrun: joining the group, each rank's share of the rows, and every
rank's rows gathered."""

import datetime
import os
from types import SimpleNamespace

import torch
import torch.distributed as dist


def join_ranks(args):
    """This process's rank and device; the process group under torchrun (WORLD_SIZE > 1)."""
    world, device = int(os.environ.get("WORLD_SIZE", "1")), torch.device("cpu")
    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("train.py: error: --device cuda: torch sees no CUDA device")
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # fixed shapes: the fastest convolutions, chosen once
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(seconds=args.timeout))
    return SimpleNamespace(rank=dist.get_rank() if world > 1 else 0, world=world, device=device)


def share(rows, ranks):
    """(offset, count) of this rank's rows of `rows`: rows / N each, the first rows % N one more."""
    base, extra = divmod(rows, ranks.world)
    return ranks.rank * base + min(ranks.rank, extra), base + (ranks.rank < extra)


def gather_rows(t, ranks):
    """Every rank's rows [b_r, ...], b_r may differ, concatenated in rank order on every rank."""
    if ranks.world == 1:
        return t
    counts = [torch.zeros(1, dtype=torch.long, device=t.device) for _ in range(ranks.world)]
    dist.all_gather(counts, torch.tensor([len(t)], device=t.device))
    counts = [int(c) for c in counts]
    padded = t.new_zeros((max(counts), *t.shape[1:]))
    padded[:len(t)] = t
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    return torch.cat([p[:c] for p, c in zip(parts, counts)])
