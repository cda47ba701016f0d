"""Drop-ins for insightface's arcface_torch: its margins (``CombinedMarginLoss``, ``ArcFace``,
``CosFace``) and ``PartialFC_V2``, whose forward runs angular's fused class-sharded loss over a
torch.distributed group (Gloo on the CPU, NCCL on CUDA) with PartialFC's class sampling. Change
the import and keep the training script:

    from angular.compat.insightface import CombinedMarginLoss, PartialFC_V2
    margin_loss = CombinedMarginLoss(64, 1.0, 0.5, 0.0)
    module_partial_fc = PartialFC_V2(margin_loss, 512, num_classes, sample_rate=1.0, fp16=False)
    loss = module_partial_fc(local_embeddings, local_labels)

What arcface_torch's users compare comes out as theirs: the loss with each sample's probability
clamped at 1e-30 (its value; the gradient ignores the clamp, as arcface_torch's does), the local
embeddings' gradient multiplied by the world size (what its all-gather's backward gives, for the
backbone's DistributedDataParallel to average), CombinedMarginLoss's ArcFace with the
straight-through gradient and no continuation past θ + m > π, the class split (rank r holds
num_classes // N classes, the first num_classes % N one more), and ``weight`` [C_r, D] initialised
N(0, 0.01) in the state_dict. Unlike arcface_torch it runs on the CPU too and takes a different
batch size on every rank and every step."""

import math
from typing import Tuple

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..distributed import _ScaleGradient, _sharded, check_sample_rate, class_range
from ..functional import _setting_tensor, _values

__all__ = ["CombinedMarginLoss", "ArcFace", "CosFace", "PartialFC_V2"]

_PROBABILITY_FLOOR = 1e-30  # arcface_torch's clamp of each sample's probability


def _target_column(logits: Tensor, labels: Tensor, value) -> Tensor:
    """`logits` with each labelled row's (label != -1) label column replaced by value(column)."""
    rows = torch.nonzero(labels != -1).squeeze(1)
    columns = labels[rows].reshape(-1)
    out = logits.clone()
    out[rows, columns] = value(logits[rows, columns])
    return out


class _Margin(nn.Module):
    """A margin on cosine logits [B, C] with labels [B] (−1: no label in these columns), as
    arcface_torch's: forward returns the scaled logits with the label's margin. angular_margin()
    names the angular margin and settings that PartialFC_V2 runs fused."""

    def angular_margin(self) -> Tuple[str, dict]:
        raise NotImplementedError


class CombinedMarginLoss(_Margin):
    """arcface_torch's CombinedMarginLoss(s, m1, m2, m3): with m1 = 1 and m3 = 0 ArcFace — the
    label's logit s·cos(θ + m2), no continuation past θ + m2 > π, its gradient that of s·cos θ
    (straight through); with m3 > 0 CosFace, s·(cos θ − m3). As in arcface_torch, other
    combinations are refused (here with m3 > 0 unless m1 = 1 and m2 = 0, which arcface_torch would
    ignore; angular.CombinedMarginLoss has the real combined margin). A positive
    ``interclass_filtering_threshold`` zeroes the labelled rows' other cosines above it."""

    def __init__(self, s: float, m1: float, m2: float, m3: float, interclass_filtering_threshold: float = 0):
        super().__init__()
        self.s, self.m1, self.m2, self.m3 = float(s), float(m1), float(m2), float(m3)
        self.interclass_filtering_threshold = float(interclass_filtering_threshold)
        if not ((self.m1 == 1 and self.m3 == 0) or (self.m3 > 0 and self.m1 == 1 and self.m2 == 0)):
            raise ValueError(f"angular: CombinedMarginLoss(s, m1, m2, m3) is ArcFace (m1 = 1, m3 = 0) or CosFace "
                             f"(m1 = 1, m2 = 0, m3 > 0) as in arcface_torch, got m1={m1}, m2={m2}, m3={m3}; "
                             f"angular.CombinedMarginLoss has cos(m1·θ + m2) − m3")

    def angular_margin(self) -> Tuple[str, dict]:
        if self.interclass_filtering_threshold > 0:
            raise ValueError("angular: PartialFC_V2 runs no interclass filtering: build CombinedMarginLoss with "
                             "interclass_filtering_threshold=0")
        if self.m3 > 0:
            return "cosface", {"scale": self.s, "margin": self.m3}
        return "arcface", {"scale": self.s, "margin": self.m2, "exact_gradient": False, "continuation": False}

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        if self.interclass_filtering_threshold > 0:
            with torch.no_grad():
                others = (logits > self.interclass_filtering_threshold) & (labels != -1).unsqueeze(1)
                others[torch.arange(len(labels), device=labels.device)[labels != -1], labels[labels != -1]] = False
            logits = logits * (~others).to(logits.dtype)
        if self.m3 > 0:
            return _target_column(logits, labels, lambda c: c - self.m3) * self.s
        return _target_column(logits, labels, lambda c: c + (torch.cos(torch.acos(c) + self.m2) - c).detach()) * self.s


class ArcFace(_Margin):
    """arcface_torch's ArcFace(s, margin): the label's logit s·cos(θ + m) with its exact gradient,
    and s·(cos θ − m·sin m) once θ + m > π."""

    def __init__(self, s: float = 64.0, margin: float = 0.5):
        super().__init__()
        self.scale, self.s, self.margin = float(s), float(s), float(margin)

    def angular_margin(self) -> Tuple[str, dict]:
        return "arcface", {"scale": self.s, "margin": self.margin}

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        m = self.margin

        def target(c):
            shifted = torch.acos(c.clamp(-1, 1)) + m
            return torch.where(shifted <= math.pi, torch.cos(shifted), c - m * math.sin(m))

        return _target_column(logits, labels, target) * self.s


class CosFace(_Margin):
    """arcface_torch's CosFace(s, m): the label's logit s·(cos θ − m)."""

    def __init__(self, s: float = 64.0, m: float = 0.40):
        super().__init__()
        self.s, self.m = float(s), float(m)

    def angular_margin(self) -> Tuple[str, dict]:
        return "cosface", {"scale": self.s, "margin": self.m}

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        return _target_column(logits, labels, lambda c: c - self.m) * self.s


class PartialFC_V2(nn.Module):  # noqa: N801 (arcface_torch's name)
    """arcface_torch's PartialFC_V2(margin_loss, embedding_size, num_classes, sample_rate, fp16):
    this rank's class vectors ``weight`` [C_r, D]; forward(local_embeddings, local_labels) is
    the mean loss of the batch gathered from every rank of the default group, the same on every
    rank, with each sample's probability clamped at 1e-30. ``sample_rate`` below 1 keeps, per
    step and rank, the classes of the batch and others drawn uniformly up to
    int(sample_rate·C_r) (arcface_torch's count), listed after a step in ``sampled_classes``.
    ``fp16`` computes the products under float16 autocast."""

    def __init__(self, margin_loss: _Margin, embedding_size: int, num_classes: int, sample_rate: float = 1.0,
                 fp16: bool = False):
        super().__init__()
        if not dist.is_initialized():
            raise RuntimeError("angular: PartialFC_V2 needs torch.distributed: call "
                               "torch.distributed.init_process_group first")
        if not isinstance(margin_loss, _Margin):
            raise TypeError(f"angular: PartialFC_V2's margin_loss must be angular.compat.insightface's "
                            f"CombinedMarginLoss, ArcFace or CosFace, got {type(margin_loss).__name__}")
        self.margin_name, settings = margin_loss.angular_margin()
        self._settings = _setting_tensor(_values(self.margin_name, settings))
        self.margin_softmax = margin_loss
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.embedding_size, self.num_classes = embedding_size, num_classes
        self.class_start, self.num_local = class_range(num_classes, self.rank, self.world_size)
        self.sample_rate, self.fp16 = check_sample_rate(sample_rate), bool(fp16)
        self._kept_rate = self._rate()
        self.sampled_classes = torch.empty(0, dtype=torch.long)
        self.weight = nn.Parameter(torch.normal(0, 0.01, (self.num_local, embedding_size)))

    def _rate(self) -> float:
        """The rate whose ceil(rate·C_r) is arcface_torch's int(sample_rate·C_r)."""
        kept = int(self.sample_rate * self.num_local)
        if self.sample_rate == 1 or kept >= self.num_local:
            return 1.0
        return max(kept - 0.5, 0.5) / self.num_local

    def forward(self, local_embeddings: Tensor, local_labels: Tensor) -> Tensor:
        labels = local_labels.reshape(-1).long()
        features = local_embeddings
        if self.world_size > 1 and features.requires_grad:
            features = _ScaleGradient.apply(features, float(self.world_size))
        row_losses = torch.empty(0)
        with torch.autocast(features.device.type, dtype=torch.float16, enabled=self.fp16):
            mean = _sharded(features, self.weight, labels, self.num_classes, self.margin_name, self._settings, None,
                            (), None, "mean", -100, 0.0, None, 0, self._kept_rate if self.training else 1.0, None,
                            self.sampled_classes, row_losses)
        # The value clamps each sample's probability at 1e-30 (every row of the gathered batch is
        # on every rank); the gradient is the exact mean's.
        clamped = row_losses.clamp(max=-math.log(_PROBABILITY_FLOOR)).mean()
        return mean.float() + (clamped.to(mean.device) - mean.float()).detach()

    def extra_repr(self) -> str:
        return (f"embedding_size={self.embedding_size}, num_classes={self.num_classes}, classes=[{self.class_start}, "
                f"{self.class_start + self.num_local}), sample_rate={self.sample_rate}, fp16={self.fp16}")
