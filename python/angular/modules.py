"""angular's losses as modules: the class vectors ``weight`` [C, D] (a Parameter, initialised like
``torch.nn.Linear``'s), the running statistics of the margins that keep them (buffers, moved in
training mode), ``forward(features, target)`` on the features-level path (no [B, C] tensor),
``logits(features)`` for prediction and ``cosines(features)``."""

import math

import torch
from torch import nn

from . import functional as F

__all__ = ["SoftmaxLoss", "CenterLoss", "ArcLoss", "ArcFaceLoss", "CosFaceLoss", "NormFaceLoss", "CombinedMarginLoss",
           "SphereFaceLoss", "SubCenterArcFaceLoss", "AdaFaceLoss", "CurricularFaceLoss"]


def class_vectors(rows, embedding_dim):
    """A Parameter [rows, D] initialised like torch.nn.Linear's weight: U(−1/√D, 1/√D)."""
    bound = 1.0 / math.sqrt(embedding_dim)
    return nn.Parameter(torch.empty(rows, embedding_dim).uniform_(-bound, bound))


class _ClassVectors(nn.Module):
    """What every loss module has: the class vectors and the cross-entropy settings."""

    def __init__(self, num_classes, embedding_dim, vectors_per_class=1, *, reduction="mean", ignore_index=-100,
                 label_smoothing=0.0, weight=None, chunk_rows=0):
        super().__init__()
        name = type(self).__name__
        for arg, value in (("num_classes", num_classes), ("embedding_dim", embedding_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"angular: {name}: {arg} must be an integer >= 1, got {value!r}")
        F._reduction(reduction)
        self.num_classes, self.embedding_dim = num_classes, embedding_dim
        self.reduction, self.ignore_index, self.label_smoothing, self.chunk_rows = (
            reduction, ignore_index, label_smoothing, chunk_rows)
        self.weight = class_vectors(num_classes * vectors_per_class, embedding_dim)
        self.register_buffer("class_weight", None if weight is None else torch.as_tensor(weight).clone())

    def _cross_entropy_args(self):
        return dict(reduction=self.reduction, ignore_index=self.ignore_index, label_smoothing=self.label_smoothing,
                    class_weight=self.class_weight, chunk_rows=self.chunk_rows)

    def _features_and_weight(self, features):
        """Features and class vectors in one dtype, the wider of the two."""
        dtype = torch.promote_types(features.dtype, self.weight.dtype)
        return features.to(dtype), self.weight.to(dtype)

    def cosines(self, features):
        """Cosines [B, C·K] between features [B, D] and the class vectors."""
        return F.cosine_matrix(features, self.weight)


class _MarginLoss(_ClassVectors):
    """A margin of the table: ``margin`` its name, ``statistics`` the names of its buffers."""

    margin = None
    statistics = ()
    statistic_starts = ()

    def __init__(self, num_classes, embedding_dim, settings, *, momentum=None, vectors_per_class=1, **kwargs):
        super().__init__(num_classes, embedding_dim, vectors_per_class, **kwargs)
        self.settings = dict(settings)
        torch.ops.angular.check_margin(self.margin, *F._settings(self.settings), num_classes)
        self.momentum = momentum
        if self.statistics:
            if not (isinstance(momentum, (int, float)) and 0 < momentum <= 1):
                raise ValueError(f"angular: momentum must be in (0, 1], got {momentum!r}")
            for name, start in zip(self.statistics, self.statistic_starts):
                self.register_buffer(name, torch.full((1,), float(start)))

    def forward(self, features, target):
        """The loss of features [B, D] with labels [B] (int64). In training mode the running
        statistics first take this batch's rows that are not ignored."""
        x, w = self._features_and_weight(features)
        statistics = [getattr(self, name) for name in self.statistics]
        if statistics and self.training:
            torch.ops.angular.update_margin_statistics_(x, w, target, self.margin, statistics, float(self.momentum),
                                                        int(self.ignore_index))
        return F._feature_loss(self.margin, x, w, target, self.settings, statistics, **self._cross_entropy_args())

    def logits(self, features):
        """Logits without margin [B, C] for prediction: argmax is the class."""
        return F.margin_logits(features, self.weight, self.margin, self.settings)

    def extra_repr(self):
        settings = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        return f"num_classes={self.num_classes}, embedding_dim={self.embedding_dim}" + (f", {settings}" if settings else "")


class SoftmaxLoss(_MarginLoss):
    """The modified softmax: CE(x Wᵀ, y), no bias."""
    margin = "soft"

    def __init__(self, num_classes, embedding_dim, **kwargs):
        super().__init__(num_classes, embedding_dim, {}, **kwargs)


class ArcLoss(_MarginLoss):
    """The paper's angular loss CE(k·(π/2 − θ_j)); k None: the paper's choice for num_classes."""
    margin = "arc"

    def __init__(self, num_classes, embedding_dim, k=None, **kwargs):
        super().__init__(num_classes, embedding_dim, {"k": k}, **kwargs)


class ArcFaceLoss(_MarginLoss):
    """ArcFace: CE(s·cos(θ_y + m), s·cos θ_j)."""
    margin = "arcface"

    def __init__(self, num_classes, embedding_dim, scale=64.0, margin=0.5, exact_gradient=True, **kwargs):
        super().__init__(num_classes, embedding_dim,
                         {"scale": scale, "margin": margin, "exact_gradient": exact_gradient}, **kwargs)


class CosFaceLoss(_MarginLoss):
    """CosFace: CE(s·(cos θ_y − m), s·cos θ_j)."""
    margin = "cosface"

    def __init__(self, num_classes, embedding_dim, scale=64.0, margin=0.35, **kwargs):
        super().__init__(num_classes, embedding_dim, {"scale": scale, "margin": margin}, **kwargs)


class NormFaceLoss(_MarginLoss):
    """NormFace: CE(s·cos θ_j)."""
    margin = "normface"

    def __init__(self, num_classes, embedding_dim, scale=16.0, **kwargs):
        super().__init__(num_classes, embedding_dim, {"scale": scale}, **kwargs)


class CombinedMarginLoss(_MarginLoss):
    """insightface's combined margin: the label's logit s·(cos(m1·θ + m2) − m3)."""
    margin = "combined"

    def __init__(self, num_classes, embedding_dim, scale=64.0, m1=1.0, m2=0.5, m3=0.0, **kwargs):
        super().__init__(num_classes, embedding_dim, {"scale": scale, "m1": m1, "m2": m2, "m3": m3}, **kwargs)


class SphereFaceLoss(_MarginLoss):
    """SphereFace (A-Softmax): ‖x‖·ψ(θ)."""
    margin = "sphereface"

    def __init__(self, num_classes, embedding_dim, margin=4.0, lambda_=0.0, **kwargs):
        super().__init__(num_classes, embedding_dim, {"margin": margin, "lambda": lambda_}, **kwargs)


class SubCenterArcFaceLoss(_MarginLoss):
    """Sub-center ArcFace: ArcFace over the nearest of K sub-centers per class; weight [C·K, D],
    class-major (class j's K vectors side by side)."""
    margin = "subcenter-arcface"

    def __init__(self, num_classes, embedding_dim, sub_centers=3, scale=64.0, margin=0.5, **kwargs):
        super().__init__(num_classes, embedding_dim, {"sub_centers": sub_centers, "scale": scale, "margin": margin},
                         vectors_per_class=sub_centers if isinstance(sub_centers, int) and sub_centers > 0 else 1,
                         **kwargs)


class AdaFaceLoss(_MarginLoss):
    """AdaFace: a margin adapted to each feature norm; buffers norm_mean and norm_std (from 20 and
    100, as its authors start them)."""
    margin = "adaface"
    statistics = ("norm_mean", "norm_std")
    statistic_starts = (20.0, 100.0)

    def __init__(self, num_classes, embedding_dim, scale=64.0, margin=0.4, h=0.333, momentum=0.01, **kwargs):
        super().__init__(num_classes, embedding_dim, {"scale": scale, "margin": margin, "h": h}, momentum=momentum,
                         **kwargs)


class CurricularFaceLoss(_MarginLoss):
    """CurricularFace: ArcFace with hard negatives weighted by the curriculum weight t (a buffer, from 0)."""
    margin = "curricularface"
    statistics = ("t",)
    statistic_starts = (0.0,)

    def __init__(self, num_classes, embedding_dim, scale=64.0, margin=0.5, momentum=0.01, **kwargs):
        super().__init__(num_classes, embedding_dim, {"scale": scale, "margin": margin}, momentum=momentum, **kwargs)


class CenterLoss(_ClassVectors):
    """The modified softmax plus λ · ½‖x − c_y‖² towards class centers [C, D] (from zero): a buffer
    moved by Wen et al.'s alpha rule in training mode, or a Parameter for the optimizer
    (update="sgd")."""

    def __init__(self, num_classes, embedding_dim, lambda_=0.003, alpha=0.5, update="alpha", **kwargs):
        super().__init__(num_classes, embedding_dim, **kwargs)
        if update not in ("alpha", "sgd"):
            raise ValueError(f"angular: update must be 'alpha' or 'sgd', got {update!r}")
        if not (isinstance(alpha, (int, float)) and 0 < alpha <= 1):
            raise ValueError(f"angular: alpha must be in (0, 1], got {alpha!r}")
        self.lambda_, self.alpha, self.update = lambda_, alpha, update
        centers = torch.zeros(num_classes, embedding_dim)
        if update == "sgd":
            self.centers = nn.Parameter(centers)
        else:
            self.register_buffer("centers", centers)

    def forward(self, features, target):
        """The loss; in training mode with the alpha rule the centers then move towards this batch."""
        x, w = self._features_and_weight(features)
        loss = F.center_loss(x, w, self.centers, target, lambda_=self.lambda_, **self._cross_entropy_args())
        if self.training and self.update == "alpha":
            # Under torch.compile the centers move in a copy that then replaces the buffer: AOT
            # autograd may recompute the loss's backward from a graph input, which must not have
            # moved (it would, in place: the compiled gradient then differs from eager's).
            centers = self.centers.clone() if torch.compiler.is_compiling() else self.centers
            torch.ops.angular.update_centers_(centers, features.detach(), target, float(self.alpha),
                                              int(self.ignore_index))
            self.centers = centers
        return loss

    def logits(self, features):
        """Logits x Wᵀ [B, C] for prediction."""
        return F.margin_logits(features, self.weight, "soft")

    def extra_repr(self):
        return (f"num_classes={self.num_classes}, embedding_dim={self.embedding_dim}, lambda={self.lambda_}, "
                f"alpha={self.alpha}, update={self.update}")
