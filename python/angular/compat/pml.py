"""Drop-ins for pytorch-metric-learning 2.x's classification losses, run by angular's fused
operators (features and class vectors, no [B, C] tensor): change one import,

    from angular.compat.pml import ArcFaceLoss      # was: from pytorch_metric_learning.losses import ...

and keep the rest: the constructor arguments and defaults (``margin`` in degrees where PML takes
degrees), the Parameter ``W`` [embedding_size, num_classes] (a PML state_dict loads, and PML loads
the drop-in's), ``forward(embeddings, labels, indices_tuple=None)`` with PML's meaning of
``indices_tuple`` (each sample weighted by how often the tuple names it, over the most named),
PML's mean over the samples, its reducers, regularizers and ``weight_init_func`` (PML objects,
called as PML calls them), ``get_logits`` and SubCenterArcFaceLoss's ``get_outliers``. As PML's,
a forward casts ``W`` to the embeddings' dtype and device.

``W`` enters the operators as ``W.t()``, a view: its gradient is written in ``W``'s layout, so
the transpose costs no copy."""

import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..functional import _feature_loss, _setting_tensor, _values

__all__ = ["ArcFaceLoss", "CosFaceLoss", "NormalizedSoftmaxLoss", "SphereFaceLoss", "SubCenterArcFaceLoss"]


def _positive_int(owner: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"angular: {owner}: {name} must be an integer >= 1, got {value!r}")
    return value


def _degrees(owner: str, margin) -> float:
    if not 0 <= float(margin) < 180:
        raise ValueError(f"angular: {owner}: margin is in degrees, as in pytorch-metric-learning, and must be in "
                         f"[0, 180), got {margin!r}")
    return math.radians(float(margin))


def miner_weights(indices_tuple, labels: Tensor, dtype: torch.dtype) -> Optional[Tensor]:
    """PML's weights of a tuple of indices (pairs or triplets) for a classification loss: each
    sample's count among all the tuple's indices over the largest count (0 where never named);
    None (all ones) for no tuple or an empty one."""
    if indices_tuple is None or all(len(t) == 0 for t in indices_tuple):
        return None
    named = torch.cat([torch.as_tensor(t, device=labels.device).reshape(-1) for t in indices_tuple])
    samples, counts = torch.unique(named, return_counts=True)
    weights = torch.zeros(labels.shape[0], dtype=dtype, device=labels.device)
    weights[samples] = counts.to(dtype) / counts.max().to(dtype)
    return weights


class _PMLLoss(nn.Module):
    """What the drop-ins share: W [D, columns], the checks and casts of PML's forward, its loss
    dictionary, reducers and regularizers. Subclasses define _loss(embeddings, labels, reduction)
    on angular's operators and get_logits."""

    def __init__(self, num_classes: int, embedding_size: int, columns: int, *, reducer=None, distance=None,
                 weight_regularizer=None, weight_reg_weight: float = 1, embedding_regularizer=None,
                 embedding_reg_weight: float = 1, weight_init_func: Optional[Callable] = None, collect_stats=None):
        super().__init__()
        owner = type(self).__name__
        self.num_classes = _positive_int(owner, "num_classes", num_classes)
        self.embedding_size = _positive_int(owner, "embedding_size", embedding_size)
        self.W = nn.Parameter(torch.empty(embedding_size, columns))
        (weight_init_func or nn.init.normal_)(self.W)  # PML's default: N(0, 1)
        self.reducer, self.distance, self.collect_stats = reducer, distance, collect_stats
        self.weight_regularizer, self.weight_reg_weight = weight_regularizer, weight_reg_weight
        self.embedding_regularizer, self.embedding_reg_weight = embedding_regularizer, embedding_reg_weight

    def cast_types(self, dtype: torch.dtype, device: torch.device) -> None:
        """W onto the embeddings' device and, outside autocast, into their dtype, in place (PML's)."""
        to_dtype = self.W.dtype if torch.is_autocast_enabled() else dtype
        if self.W.device != device or self.W.dtype != to_dtype:
            self.W.data = self.W.data.to(device=device, dtype=to_dtype)

    def _check(self, embeddings: Tensor, labels: Optional[Tensor], ref_emb, ref_labels) -> Tensor:
        owner = type(self).__name__
        if labels is None:
            raise ValueError(f"angular: {owner} needs labels")
        if (ref_emb is not None and ref_emb is not embeddings) or (ref_labels is not None and ref_labels is not labels):
            raise ValueError(f"angular: {owner} does not take ref_emb or ref_labels")
        if labels.dim() != 1 or embeddings.dim() != 2 or labels.shape[0] != embeddings.shape[0]:
            raise ValueError(f"angular: {owner}: embeddings must be [N, {self.embedding_size}] and labels [N], got "
                             f"{list(embeddings.shape)} and {list(labels.shape)}")
        return labels.to(embeddings.device)

    def forward(self, embeddings: Tensor, labels: Optional[Tensor] = None, indices_tuple=None, ref_emb=None,
                ref_labels=None):
        """The mean over the samples of their losses, each weighted by ``indices_tuple`` where
        given (see miner_weights); with a ``reducer``, what it makes of PML's loss dictionary."""
        labels = self._check(embeddings, labels, ref_emb, ref_labels)
        self.cast_types(embeddings.dtype, embeddings.device)
        weights = miner_weights(indices_tuple, labels, embeddings.dtype)
        plain = self.reducer is None and self.weight_regularizer is None and self.embedding_regularizer is None
        if weights is None and plain:
            return self._loss(embeddings, labels, "mean")
        losses = self._loss(embeddings, labels, "none")
        losses = losses if weights is None else losses * weights
        loss_dict = {"loss": {"losses": losses, "indices": torch.arange(len(labels), device=embeddings.device),
                              "reduction_type": "element"}}
        if self.weight_regularizer is not None:
            loss_dict["weight_reg_loss"] = {"losses": self.weight_regularizer(self.W.t()) * self.weight_reg_weight,
                                            "indices": None, "reduction_type": "already_reduced"}
        if self.embedding_regularizer is not None:
            loss_dict["embedding_reg_loss"] = {
                "losses": self.embedding_regularizer(embeddings) * self.embedding_reg_weight, "indices": None,
                "reduction_type": "already_reduced"}
        if self.reducer is None:  # PML's MeanReducer on each part, summed
            return sum(part["losses"] if part["reduction_type"] == "already_reduced" else part["losses"].mean()
                       for part in loss_dict.values())
        if type(self.reducer).__name__ == "DoNothingReducer":
            return self.reducer(loss_dict, embeddings, labels)
        return sum(self.reducer({name: part}, embeddings, labels) for name, part in loss_dict.items())

    def _fused(self, margin_name: str, embeddings: Tensor, labels: Tensor, reduction: str, **settings) -> Tensor:
        """angular's operator over the features and W.t(); the loss in the embeddings' dtype, as PML's."""
        return _feature_loss(margin_name, embeddings, self.W.t(), labels, [],
                             _setting_tensor(_values(margin_name, settings)), reduction, -100, 0.0, None,
                             0).to(embeddings.dtype)

    def _cosines(self, embeddings: Tensor) -> Tensor:
        return torch.matmul(F.normalize(embeddings, dim=1), F.normalize(self.W, dim=0))

    def _check_distance(self, accepted) -> None:
        if self.distance is not None and type(self.distance).__name__ not in accepted:
            raise ValueError(f"angular: {type(self).__name__} takes distance={' or '.join(accepted)} (PML's "
                             f"default), got {type(self.distance).__name__}")


class _AngularMarginLoss(_PMLLoss):
    """ArcFace, CosFace and sub-center ArcFace: cosine logits times ``scale``."""

    def __init__(self, num_classes, embedding_size, columns, scale, **kwargs):
        super().__init__(num_classes, embedding_size, columns, **kwargs)
        self._check_distance(("CosineSimilarity",))
        self.scale = float(scale)

    def get_logits(self, embeddings: Tensor) -> Tensor:
        """scale·cos θ_j [N, C] without the margin (PML's get_logits)."""
        return self._cosines(embeddings) * self.scale


class ArcFaceLoss(_AngularMarginLoss):
    """PML's ArcFaceLoss: ``margin`` in degrees (28.6 ≈ 0.5 rad), held as ``self.margin`` in
    radians as PML holds it; the label's logit s·cos(θ + m), s·(cos θ − m·sin m) past θ + m > π."""

    def __init__(self, num_classes: int, embedding_size: int, margin: float = 28.6, scale: float = 64, **kwargs):
        super().__init__(num_classes, embedding_size, num_classes, scale, **kwargs)
        self.margin = _degrees(type(self).__name__, margin)

    def _loss(self, embeddings, labels, reduction):
        return self._fused("arcface", embeddings, labels, reduction, scale=self.scale, margin=self.margin)


class SubCenterArcFaceLoss(ArcFaceLoss):
    """PML's SubCenterArcFaceLoss: ``sub_centers`` K columns of W per class (column c·K + k),
    the class's cosine their largest; ``get_outliers`` finds samples far from their class's
    dominant sub-center."""

    def __init__(self, num_classes: int, embedding_size: int, margin: float = 28.6, scale: float = 64,
                 sub_centers: int = 3, **kwargs):
        self_name = type(self).__name__
        _AngularMarginLoss.__init__(self, num_classes, embedding_size,
                                    num_classes * _positive_int(self_name, "sub_centers", sub_centers), scale, **kwargs)
        self.margin, self.sub_centers = _degrees(self_name, margin), sub_centers

    def _loss(self, embeddings, labels, reduction):
        return self._fused("subcenter-arcface", embeddings, labels, reduction, sub_centers=self.sub_centers,
                           scale=self.scale, margin=self.margin)

    def _cosines(self, embeddings: Tensor) -> Tensor:
        cos = super()._cosines(embeddings)
        return cos.view(-1, self.num_classes, self.sub_centers).amax(2)

    @torch.no_grad()
    def get_outliers(self, embeddings: Tensor, labels: Tensor, threshold: float = 75,
                     return_dominant_centers: bool = True):
        """(outliers, dominant_centers), as PML returns them whatever ``return_dominant_centers``:
        the indices (int64, by label then index) of the samples whose angle to their class's
        dominant sub-center — the one most of the class's samples are nearest — exceeds
        ``threshold`` degrees, and the dominant sub-centers [D, C] (zero for classes absent from
        the batch)."""
        labels = self._check(embeddings, labels, None, None)
        self.cast_types(embeddings.dtype, embeddings.device)
        cos = _PMLLoss._cosines(self, embeddings)  # every sub-center's
        own = cos.view(-1, self.num_classes, self.sub_centers)[torch.arange(len(labels)), labels]  # [N, K]
        votes = torch.zeros(self.num_classes, self.sub_centers, dtype=torch.long, device=labels.device)
        votes.index_put_((labels, own.argmax(1)), torch.ones_like(labels), accumulate=True)
        dominant = votes.argmax(1)  # the first of equal counts
        to_dominant = own.gather(1, dominant[labels].unsqueeze(1)).squeeze(1)
        outliers = torch.nonzero(to_dominant < math.cos(math.radians(threshold))).squeeze(1)
        outliers = outliers[torch.sort(labels[outliers], stable=True).indices]
        present = torch.unique(labels)
        centers = torch.zeros(self.embedding_size, self.num_classes, dtype=self.W.dtype, device=self.W.device)
        centers[:, present] = self.W[:, present * self.sub_centers + dominant[present]]
        return outliers, centers


class CosFaceLoss(_AngularMarginLoss):
    """PML's CosFaceLoss: the label's logit s·(cos θ − margin)."""

    def __init__(self, num_classes: int, embedding_size: int, margin: float = 0.35, scale: float = 64, **kwargs):
        super().__init__(num_classes, embedding_size, num_classes, scale, **kwargs)
        self.margin = float(margin)

    def _loss(self, embeddings, labels, reduction):
        return self._fused("cosface", embeddings, labels, reduction, scale=self.scale, margin=self.margin)


class SphereFaceLoss(_PMLLoss):
    """PML's SphereFaceLoss: logits scale·‖x‖·cos θ_j, the label's scale·‖x‖·ψ(θ) with
    ψ(θ) = (−1)^k·cos(mθ) − 2k, the integer ``margin`` m."""

    def __init__(self, num_classes: int, embedding_size: int, margin: float = 4, scale: float = 1, **kwargs):
        super().__init__(num_classes, embedding_size, num_classes, **kwargs)
        self._check_distance(("CosineSimilarity",))
        self.margin, self.scale = int(margin), float(scale)

    def _loss(self, embeddings, labels, reduction):
        # ‖s·x‖·ψ = s·‖x‖·ψ: the scale rides on the features, whose direction it keeps.
        scaled = embeddings if self.scale == 1 else embeddings * self.scale
        return self._fused("sphereface", scaled, labels, reduction, margin=self.margin)

    def get_logits(self, embeddings: Tensor) -> Tensor:
        """scale·‖x‖·cos θ_j = scale·x·ŵ_j [N, C] without the margin (PML's get_logits)."""
        return torch.matmul(embeddings, F.normalize(self.W, dim=0)) * self.scale


class NormalizedSoftmaxLoss(_PMLLoss):
    """PML's NormalizedSoftmaxLoss: logits cos θ_j / ``temperature``. With a ``distance`` other
    than PML's default (a normalising dot product or cosine), the logits are that distance's
    between the embeddings and the normalised W, over torch's cross-entropy (not fused)."""

    def __init__(self, num_classes: int, embedding_size: int, temperature: float = 0.05, **kwargs):
        super().__init__(num_classes, embedding_size, num_classes, **kwargs)
        if not float(temperature) > 0:
            raise ValueError(f"angular: NormalizedSoftmaxLoss: temperature must be > 0, got {temperature!r}")
        self.temperature = float(temperature)

    def _cosine_distance(self) -> bool:
        d = self.distance
        return d is None or (type(d).__name__ in ("DotProductSimilarity", "CosineSimilarity") and
                             getattr(d, "normalize_embeddings", True) and getattr(d, "p", 2) == 2 and
                             getattr(d, "power", 1) == 1)

    def get_logits(self, embeddings: Tensor) -> Tensor:
        """cos θ_j / temperature [N, C] (with another distance, its value over the temperature)."""
        if self._cosine_distance():
            return self._cosines(embeddings) / self.temperature
        similarity = self.distance(embeddings, self.distance.normalize(self.W, dim=0).t())
        return (similarity if self.distance.is_inverted else -similarity) / self.temperature

    def _loss(self, embeddings, labels, reduction):
        if self._cosine_distance():
            return self._fused("normface", embeddings, labels, reduction, scale=1.0 / self.temperature)
        return F.cross_entropy(self.get_logits(embeddings), labels, reduction=reduction)
