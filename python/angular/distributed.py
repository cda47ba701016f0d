"""The margin losses with the class vectors split over the ranks of a torch.distributed process
group (model parallel, as insightface's PartialFC without sampling): rank r holds the classes
``class_range(num_classes, r, world_size)``. The loss is that of the whole batch gathered from
every rank, the same number on every rank; nothing [B, C]-sized is exchanged. Gloo on the CPU,
NCCL on CUDA. Every rank calls it, and backward on its result. It runs eagerly: under
torch.compile it is a graph break (its collectives and label checks read data).

    torch.distributed.init_process_group("gloo")          # under torchrun
    head = angular.distributed.ShardedMarginLoss(num_classes, 512, "arcface", {"scale": 64.0})
    loss = head(DistributedDataParallel(backbone)(images), labels)
"""

import torch
import torch.distributed as dist
from torch import nn

from . import functional as F
from .modules import class_vectors

__all__ = ["class_range", "sharded_margin_loss", "ShardedMarginLoss"]


def class_range(num_classes, rank, world_size):
    """(offset, count): the classes [offset, offset + count) of rank ``rank`` of ``world_size``,
    C / N each, the first C % N ranks one more."""
    return tuple(torch.ops.angular.class_range(int(num_classes), int(rank), int(world_size)))


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


@torch.compiler.disable
def sharded_margin_loss(features, weight_shard, target, num_classes, margin="arcface", settings=None, group=None, *,
                        statistics=(), reduction="mean", ignore_index=-100, label_smoothing=0.0, class_weight=None,
                        chunk_classes=0):
    """The loss of the batch gathered over ``group`` (default: the world) from this rank's
    ``features`` [b, D] and labels [b], with this rank's class vectors ``weight_shard``
    [C_r·K, D]. ``margin`` names the margin ("arcface", "cosface", ...; as angular.functional),
    ``settings`` its settings (a dict); ``statistics`` AdaFace's (norm_mean, norm_std) or
    CurricularFace's (t,). ``class_weight`` [C] covers all classes. The features' gradient is
    that of the whole batch's loss for this rank's rows."""
    names, values = F._settings(settings or {})
    return torch.ops.angular.sharded_margin_cross_entropy(
        features, weight_shard, target, _group_name(group), int(num_classes), margin, names, values, list(statistics),
        class_weight, F._reduction(reduction), int(ignore_index), float(label_smoothing), int(chunk_classes))


class ShardedMarginLoss(nn.Module):
    """A margin loss whose class vectors ``weight`` [C_r·K, D] are this rank's share. The
    features' gradient is multiplied by the world size, so that DistributedDataParallel, which
    averages the backbone's gradients over the ranks, gives the whole batch's gradient (one
    process with the whole batch gets the same); ``ddp=False`` leaves it as it is, for a loop
    that sums the gradients itself."""

    def __init__(self, num_classes, embedding_dim, margin="arcface", settings=None, group=None, *, sub_centers=1,
                 ddp=True, reduction="mean", ignore_index=-100, label_smoothing=0.0, class_weight=None,
                 chunk_classes=0):
        super().__init__()
        if margin in ("adaface", "curricularface"):
            raise ValueError(f"angular: ShardedMarginLoss keeps no running statistics, which {margin} reads: call "
                             "sharded_margin_loss with statistics=(...) and move them yourself")
        self.group = group
        rank, world = dist.get_rank(group), dist.get_world_size(group)
        self.num_classes, self.embedding_dim, self.margin = num_classes, embedding_dim, margin
        self.settings = dict(settings or {})
        if margin == "subcenter-arcface":
            sub_centers = int(self.settings.setdefault("sub_centers", 3))
        self.classes = class_range(num_classes, rank, world)
        self.ddp, self.world_size = ddp, world
        self.reduction, self.ignore_index, self.label_smoothing, self.chunk_classes = (
            reduction, ignore_index, label_smoothing, chunk_classes)
        torch.ops.angular.check_margin(margin, *F._settings(self.settings), num_classes)
        self.weight = class_vectors(self.classes[1] * sub_centers, embedding_dim)
        self.register_buffer("class_weight", None if class_weight is None else torch.as_tensor(class_weight).clone())

    def forward(self, features, target):
        if self.ddp and self.world_size > 1 and features.requires_grad:
            features = _ScaleGradient.apply(features, float(self.world_size))
        return sharded_margin_loss(features, self.weight.to(features.dtype), target, self.num_classes, self.margin,
                                   self.settings, self.group, reduction=self.reduction,
                                   ignore_index=self.ignore_index, label_smoothing=self.label_smoothing,
                                   class_weight=self.class_weight, chunk_classes=self.chunk_classes)

    def extra_repr(self):
        offset, count = self.classes
        return f"num_classes={self.num_classes}, classes=[{offset}, {offset + count}), margin={self.margin}"
