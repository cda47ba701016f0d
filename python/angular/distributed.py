"""The margin losses with the class vectors split over the ranks of a torch.distributed process
group (model parallel, as insightface's PartialFC without sampling): rank r holds the classes
``class_range(num_classes, r, world_size)``. The loss is that of the whole batch gathered from
every rank, the same number on every rank; nothing [B, C]-sized is exchanged. Gloo on the CPU,
NCCL on CUDA. Every rank calls it, and backward on its result. It runs eagerly: under
torch.compile it is a graph break (its collectives and label checks read data).

    torch.distributed.init_process_group("gloo")          # under torchrun
    backbone = DistributedDataParallel(backbone)          # the sharded head stays outside DDP
    head = angular.distributed.ShardedMarginLoss(num_classes, 512, "arcface", {"scale": 64.0})
    loss = head(backbone(images), labels)

Its checkpoints resume on any number of ranks (save_head_shards, load_head_shards), and
export_head writes the whole head as one file for one process.
"""

from typing import Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from torch import Tensor, nn

from . import _table
from .functional import _setting_tensor, _values, reduction_code
from .modules import check_momentum, class_vectors, write_setting
from .sharded_checkpoint import export_head, load_head_shards, save_head_shards

__all__ = ["class_range", "sharded_margin_loss", "ShardedMarginLoss", "save_head_shards", "load_head_shards",
           "export_head"]


def class_range(num_classes: int, rank: int, world_size: int) -> Tuple[int, int]:
    """(offset, count): the classes [offset, offset + count) of rank ``rank`` of ``world_size``,
    C / N each, the first C % N ranks one more."""
    return tuple(torch.ops.angular.class_range(int(num_classes), int(rank), int(world_size)))


def check_sample_rate(sample_rate, generator=None) -> float:
    """PartialFC's sampling settings, checked as the C++ sharded loss checks them."""
    if isinstance(sample_rate, bool) or not (isinstance(sample_rate, (int, float)) and 0 < sample_rate <= 1):
        raise ValueError(f"angular: sample_rate must be in (0, 1], got {sample_rate!r}")
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"angular: generator (class sampling) must be a CPU generator, got one on "
                         f"{generator.device}")
    return float(sample_rate)


def _group_name(group):
    group = group if group is not None else dist.group.WORLD
    if group is None:
        raise RuntimeError("angular: the sharded loss needs a process group: call "
                           "torch.distributed.init_process_group first, or pass group=")
    return group.group_name


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, factor):
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.factor, None


def _sharded(features, weight_shard, target, num_classes, margin_name, settings, group, statistics, momentum,
             reduction, ignore_index, label_smoothing, class_weight, chunk_classes, sample_rate=1.0, generator=None,
             sampled_classes=None, row_losses=None):
    return torch.ops.angular.sharded_margin_cross_entropy(
        features, weight_shard, target, _group_name(group), int(num_classes), margin_name, settings, list(statistics),
        class_weight, reduction_code(reduction), int(ignore_index), float(label_smoothing), int(chunk_classes),
        None if momentum is None else float(momentum), float(sample_rate), generator, sampled_classes, row_losses)


@torch.compiler.disable
def sharded_margin_loss(features: Tensor, weight_shard: Tensor, target: Tensor, num_classes: int,
                        margin_name: str = "arcface", settings: Optional[dict] = None, group=None, *,
                        statistics: Sequence[Tensor] = (), momentum: Optional[float] = None, reduction: str = "mean",
                        ignore_index: int = -100, label_smoothing: float = 0.0, class_weight: Optional[Tensor] = None,
                        chunk_classes: int = 0, sample_rate: float = 1.0, generator: Optional[torch.Generator] = None,
                        sampled_classes: Optional[Tensor] = None) -> Tensor:
    """The loss of the batch gathered over ``group`` (default: the world) from this rank's
    ``features`` [b, D] and labels [b], with this rank's class vectors ``weight_shard``
    [C_r·K, D]. ``margin_name`` names the margin ("arcface", "cosface", ...; as
    angular.functional), ``settings`` its settings (a dict; the others take their defaults);
    ``statistics`` AdaFace's (norm_mean, norm_std) or CurricularFace's (t,), which with a
    ``momentum`` first take the gathered batch, in place. ``class_weight`` [C] covers all classes.
    The features' gradient is that of the whole batch's loss for this rank's rows.

    ``sample_rate`` below 1 samples classes as PartialFC does: each rank keeps the classes of its
    shard that label a sample of the gathered batch and draws others uniformly, without
    replacement, from ``generator`` (a CPU generator; default: torch's) until it keeps
    max(positives, ceil(sample_rate·C_r)); the loss is over the kept classes of all ranks and the
    shard's other rows get a zero gradient. ``sampled_classes``, an int64 CPU tensor, is set to
    the kept classes (global indices: the positives, then the drawn ones, each ascending)."""
    return _sharded(features, weight_shard, target, num_classes, margin_name,
                    _setting_tensor(_values(margin_name, settings or {})), group, statistics, momentum, reduction,
                    ignore_index, label_smoothing, class_weight, chunk_classes, sample_rate, generator,
                    sampled_classes)


class ShardedMarginLoss(nn.Module):
    """A margin loss whose class vectors ``weight`` [C_r·K, D] are this rank's share, with the
    running statistics of its margin (AdaFace's norm_mean and norm_std, CurricularFace's t) as
    buffers that take the gathered batch in training mode, alike on every rank. The features'
    gradient is multiplied by the world size, so that DistributedDataParallel around the
    backbone, which averages the backbone's gradients over the ranks, gives the whole batch's
    gradient (one process with the whole batch gets the same); ``ddp=False`` leaves it as it is,
    for a loop that sums the gradients itself. Keep it out of DistributedDataParallel: its
    parameters differ on every rank. Settings are attributes of their own names, as in the
    single-process modules. ``sample_rate`` below 1 samples classes in training mode (see
    sharded_margin_loss), from ``generator``; ``sampled_classes`` holds the last step's kept classes."""

    def __init__(self, num_classes: int, embedding_dim: int, margin_name: str = "arcface",
                 settings: Optional[dict] = None, group=None, *, ddp: bool = True, momentum: Optional[float] = None,
                 reduction: str = "mean", ignore_index: int = -100, label_smoothing: float = 0.0,
                 class_weight: Optional[Tensor] = None, chunk_classes: int = 0, sample_rate: float = 1.0,
                 generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        margin = _table.find(margin_name)
        values = _values(margin_name, settings or {})
        self.__dict__["_margin"] = margin
        self._settings = _setting_tensor(values)
        torch.ops.angular.check_settings(margin_name, self._settings, num_classes)
        if margin.module_settings:
            momentum = margin.module_settings[0].default if momentum is None else momentum
            check_momentum(momentum)
        self.group, self.margin_name, self.momentum = group, margin_name, momentum
        rank, world = dist.get_rank(group), dist.get_world_size(group)
        self.num_classes, self.embedding_dim, self.classes = num_classes, embedding_dim, class_range(num_classes, rank,
                                                                                                    world)
        self.sample_rate, self.generator = check_sample_rate(sample_rate, generator), generator
        self.sampled_classes = torch.empty(0, dtype=torch.long)
        self.ddp, self.world_size = ddp, world
        self.reduction, self.ignore_index, self.label_smoothing, self.chunk_classes = (
            reduction, ignore_index, label_smoothing, chunk_classes)
        names = [s.name for s in margin.settings]
        sub_centers = int(values[names.index("sub_centers")]) if "sub_centers" in names else 1
        self.weight = class_vectors(self.classes[1] * sub_centers, embedding_dim)
        self.register_buffer("class_weight", None if class_weight is None else torch.as_tensor(class_weight).clone())
        for s in margin.statistics:
            self.register_buffer(s.name, torch.full((1,), float(s.start)))

    def _setting_index(self, name):
        margin = self.__dict__.get("_margin")
        names = [s.python for s in margin.settings] if margin is not None else []
        return names.index(name) if name in names else None

    def __getattr__(self, name):
        index = self._setting_index(name)
        if index is None:
            return super().__getattr__(name)
        return self._margin.settings[index].value(self._settings[index].item())

    def __setattr__(self, name, value):
        index = self._setting_index(name)
        if index is None:
            return super().__setattr__(name, value)
        write_setting(self._settings, index, name, value,
                      lambda v: torch.ops.angular.check_settings(self.margin_name, v, self.num_classes))

    @torch.compiler.disable
    def forward(self, features: Tensor, target: Tensor) -> Tensor:
        """The loss of the whole batch (see sharded_margin_loss); in training mode the running
        statistics first take the gathered batch."""
        if self.ddp and self.world_size > 1 and features.requires_grad:
            features = _ScaleGradient.apply(features, float(self.world_size))
        statistics = [getattr(self, s.name) for s in self._margin.statistics]
        momentum = self.momentum if self.training and statistics else None
        return _sharded(features, self.weight.to(features.dtype), target, self.num_classes, self.margin_name,
                        self._settings, self.group, statistics, momentum, self.reduction, self.ignore_index,
                        self.label_smoothing, self.class_weight, self.chunk_classes,
                        self.sample_rate if self.training else 1.0, self.generator, self.sampled_classes)

    def extra_repr(self) -> str:
        offset, count = self.classes
        return f"num_classes={self.num_classes}, classes=[{offset}, {offset + count}), margin_name={self.margin_name}"
