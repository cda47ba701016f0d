"""The paper's angle metrics (eqs. 12-15), in radians: WC-Intra (class vectors against feature
centers), W-Inter (between class vectors), C-Inter (between feature centers), from streaming
per-class sums; target angles, their histograms, top-k accuracy."""

import math
from dataclasses import dataclass

import torch

__all__ = ["AngleStats", "AngleSummary", "target_angles", "angle_histogram", "top_k_accuracy", "w_inter"]


@dataclass
class AngleSummary:
    wc_intra: float  # mean over classes with samples of ∠(W_i, x̄_i)
    w_inter: float  # mean over class pairs of ∠(W_i, W_j)
    c_inter: float  # mean over pairs of classes with samples of ∠(x̄_i, x̄_j)
    intra: float  # sample-weighted mean of arccos ‖x̄_i‖
    wc: torch.Tensor  # [C] ∠(W_i, x̄_i), NaN for classes without samples
    counts: torch.Tensor  # [C] samples per class
    empty_classes: int
    centers: torch.Tensor  # [C, D] x̄_i


class AngleStats:
    """Streaming per-class sums of the unit features (float64) and counts: ``update`` per batch,
    ``merge`` another accumulator (a data-parallel worker's), ``compute(weight)`` at the end."""

    def __init__(self, num_classes, embedding_dim):
        self._stats = torch.classes.angular.AngleStats(num_classes, embedding_dim)

    def update(self, features, labels):
        self._stats.update(features.detach(), labels)

    def merge(self, other):
        self._stats.merge(other._stats)

    def reset(self):
        self._stats.reset()

    @property
    def sums(self):
        return self._stats.sums()

    @property
    def counts(self):
        return self._stats.counts()

    def compute(self, weight):
        return AngleSummary(*self._stats.compute(weight.detach()))


def target_angles(features, labels, weight):
    """∠(x_i, W_{y_i}) [B] in radians."""
    return torch.ops.angular.target_angles(features.detach(), labels, weight.detach())


def angle_histogram(angles, labels, num_classes, bins, max_angle=math.pi):
    """Counts [C, bins] of the angles per class over [0, max_angle)."""
    return torch.ops.angular.angle_histogram(angles, labels, int(num_classes), int(bins), float(max_angle))


def top_k_accuracy(logits, labels, k=1):
    """The fraction of samples whose label is among their k largest logits."""
    return torch.ops.angular.top_k_accuracy(logits.detach(), labels, int(k))


def w_inter(weight):
    """The mean angle between class vectors."""
    return torch.ops.angular.w_inter(weight.detach())
