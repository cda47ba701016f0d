"""angular's losses as functions, over cosines and over features + class vectors.

Every function takes, like ``torch.nn.functional.cross_entropy``, ``reduction`` ("mean", "sum"
or "none"), ``ignore_index``, ``label_smoothing`` and class weights: ``weight`` over cosines,
``class_weight`` over features (where ``weight`` is the class vectors [C, D]). The settings
of each margin keep their C++ names and defaults. Over features no [B, C] tensor is built:
``chunk_rows`` samples at a time (0: as many as fit 128 MiB).
"""

import math

import torch

__all__ = [
    "arc_loss", "arcface_loss", "cosface_loss", "normface_loss", "combined_margin_loss", "sphereface_loss",
    "subcenter_arcface_loss", "adaface_loss", "curricularface_loss",
    "linear_arc_loss", "linear_arcface_loss", "linear_cosface_loss", "linear_normface_loss",
    "linear_combined_margin_loss", "linear_sphereface_loss", "linear_subcenter_arcface_loss",
    "linear_adaface_loss", "linear_curricularface_loss", "softmax_loss", "center_loss",
    "cosine_matrix", "margin_logits", "margin_settings",
]

_REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}


def _reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"angular: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return _REDUCTIONS[reduction]


def _settings(settings):
    """The op's setting names and values: None (Arc's automatic k) travels as NaN."""
    names, values = [], []
    for name, value in settings.items():
        names.append(name)
        values.append(math.nan if value is None else float(value))
    return names, values


def _cosine_loss(margin, cos, target, settings, norms=None, statistics=(), *, reduction, ignore_index,
                 label_smoothing, weight):
    names, values = _settings(settings)
    return torch.ops.angular.margin_cross_entropy(
        cos, norms, target, margin, names, values, list(statistics), weight, _reduction(reduction),
        int(ignore_index), float(label_smoothing))


def _feature_loss(margin, features, weight, target, settings, statistics=(), *, reduction, ignore_index,
                  label_smoothing, class_weight, chunk_rows):
    names, values = _settings(settings)
    return torch.ops.angular.linear_margin_cross_entropy(
        features, weight, target, margin, names, values, list(statistics), class_weight, _reduction(reduction),
        int(ignore_index), float(label_smoothing), int(chunk_rows))


def margin_settings(margin):
    """The settings of the margin named ``margin`` ("arcface", ...) and their C++ defaults."""
    names, defaults = torch.ops.angular.margin_settings(margin)
    return {n: (None if math.isnan(d) else d) for n, d in zip(names, defaults)}


# ---- over cosines [B, C] ------------------------------------------------------------------------

def arc_loss(cos, target, *, k=None, reduction="mean", ignore_index=-100, label_smoothing=0.0, weight=None):
    """The paper's angular loss: CE(k·(π/2 − θ_j)); k None: the paper's choice for C classes."""
    return _cosine_loss("arc", cos, target, {"k": k}, reduction=reduction, ignore_index=ignore_index,
                        label_smoothing=label_smoothing, weight=weight)


def arcface_loss(cos, target, *, scale=64.0, margin=0.5, exact_gradient=True, reduction="mean", ignore_index=-100,
                 label_smoothing=0.0, weight=None):
    """ArcFace: CE(s·cos(θ_y + m), s·cos θ_j); exact_gradient False: insightface's straight-through slope."""
    return _cosine_loss("arcface", cos, target, {"scale": scale, "margin": margin, "exact_gradient": exact_gradient},
                        reduction=reduction, ignore_index=ignore_index, label_smoothing=label_smoothing,
                        weight=weight)


def cosface_loss(cos, target, *, scale=64.0, margin=0.35, reduction="mean", ignore_index=-100, label_smoothing=0.0,
                 weight=None):
    """CosFace: CE(s·(cos θ_y − m), s·cos θ_j)."""
    return _cosine_loss("cosface", cos, target, {"scale": scale, "margin": margin}, reduction=reduction,
                        ignore_index=ignore_index, label_smoothing=label_smoothing, weight=weight)


def normface_loss(cos, target, *, scale=16.0, reduction="mean", ignore_index=-100, label_smoothing=0.0, weight=None):
    """NormFace: CE(s·cos θ_j), no margin."""
    return _cosine_loss("normface", cos, target, {"scale": scale}, reduction=reduction, ignore_index=ignore_index,
                        label_smoothing=label_smoothing, weight=weight)


def combined_margin_loss(cos, target, *, scale=64.0, m1=1.0, m2=0.5, m3=0.0, reduction="mean", ignore_index=-100,
                         label_smoothing=0.0, weight=None):
    """insightface's combined margin: the label's logit s·(cos(m1·θ + m2) − m3)."""
    return _cosine_loss("combined", cos, target, {"scale": scale, "m1": m1, "m2": m2, "m3": m3}, reduction=reduction,
                        ignore_index=ignore_index, label_smoothing=label_smoothing, weight=weight)


def sphereface_loss(cos, norms, target, *, margin=4.0, lambda_=0.0, reduction="mean", ignore_index=-100,
                    label_smoothing=0.0, weight=None):
    """SphereFace (A-Softmax) of cosines and the features' norms [B] (which get a gradient)."""
    return _cosine_loss("sphereface", cos, target, {"margin": margin, "lambda": lambda_}, norms,
                        reduction=reduction, ignore_index=ignore_index, label_smoothing=label_smoothing,
                        weight=weight)


def subcenter_arcface_loss(cos, target, *, sub_centers=3, scale=64.0, margin=0.5, reduction="mean",
                           ignore_index=-100, label_smoothing=0.0, weight=None):
    """Sub-center ArcFace of cosines [B, C·K] (class-major: class j's K columns side by side)."""
    return _cosine_loss("subcenter-arcface", cos, target, {"sub_centers": sub_centers, "scale": scale,
                                                            "margin": margin},
                        reduction=reduction, ignore_index=ignore_index, label_smoothing=label_smoothing,
                        weight=weight)


def adaface_loss(cos, norms, target, norm_mean, norm_std, *, scale=64.0, margin=0.4, h=0.333, reduction="mean",
                 ignore_index=-100, label_smoothing=0.0, weight=None):
    """AdaFace of cosines, the features' norms [B] (no gradient) and their running statistics."""
    return _cosine_loss("adaface", cos, target, {"scale": scale, "margin": margin, "h": h}, norms,
                        (norm_mean, norm_std), reduction=reduction, ignore_index=ignore_index,
                        label_smoothing=label_smoothing, weight=weight)


def curricularface_loss(cos, target, t, *, scale=64.0, margin=0.5, reduction="mean", ignore_index=-100,
                        label_smoothing=0.0, weight=None):
    """CurricularFace of cosines and the curriculum weight t (one element)."""
    return _cosine_loss("curricularface", cos, target, {"scale": scale, "margin": margin}, None, (t,),
                        reduction=reduction, ignore_index=ignore_index, label_smoothing=label_smoothing,
                        weight=weight)


# ---- over features [B, D] and class vectors weight [C, D] ----------------------------------------

def _linear(margin, features, weight, target, settings, statistics=(), *, reduction="mean", ignore_index=-100,
            label_smoothing=0.0, class_weight=None, chunk_rows=0):
    return _feature_loss(margin, features, weight, target, settings, statistics, reduction=reduction,
                         ignore_index=ignore_index, label_smoothing=label_smoothing, class_weight=class_weight,
                         chunk_rows=chunk_rows)


def linear_arc_loss(features, weight, target, *, k=None, **kwargs):
    """arc_loss of features and class vectors, without the [B, C] cosines."""
    return _linear("arc", features, weight, target, {"k": k}, **kwargs)


def linear_arcface_loss(features, weight, target, *, scale=64.0, margin=0.5, exact_gradient=True, **kwargs):
    """arcface_loss of features and class vectors, without the [B, C] cosines."""
    return _linear("arcface", features, weight, target,
                   {"scale": scale, "margin": margin, "exact_gradient": exact_gradient}, **kwargs)


def linear_cosface_loss(features, weight, target, *, scale=64.0, margin=0.35, **kwargs):
    """cosface_loss of features and class vectors, without the [B, C] cosines."""
    return _linear("cosface", features, weight, target, {"scale": scale, "margin": margin}, **kwargs)


def linear_normface_loss(features, weight, target, *, scale=16.0, **kwargs):
    """normface_loss of features and class vectors, without the [B, C] cosines."""
    return _linear("normface", features, weight, target, {"scale": scale}, **kwargs)


def linear_combined_margin_loss(features, weight, target, *, scale=64.0, m1=1.0, m2=0.5, m3=0.0, **kwargs):
    """combined_margin_loss of features and class vectors, without the [B, C] cosines."""
    return _linear("combined", features, weight, target, {"scale": scale, "m1": m1, "m2": m2, "m3": m3}, **kwargs)


def linear_sphereface_loss(features, weight, target, *, margin=4.0, lambda_=0.0, **kwargs):
    """SphereFace of features (their norms taken from them) and class vectors."""
    return _linear("sphereface", features, weight, target, {"margin": margin, "lambda": lambda_}, **kwargs)


def linear_subcenter_arcface_loss(features, weight, target, *, sub_centers=3, scale=64.0, margin=0.5, **kwargs):
    """Sub-center ArcFace of features and class vectors weight [C·K, D] (class-major)."""
    return _linear("subcenter-arcface", features, weight, target,
                   {"sub_centers": sub_centers, "scale": scale, "margin": margin}, **kwargs)


def linear_adaface_loss(features, weight, target, norm_mean, norm_std, *, scale=64.0, margin=0.4, h=0.333,
                        **kwargs):
    """AdaFace of features (their norms taken from them) and class vectors."""
    return _linear("adaface", features, weight, target, {"scale": scale, "margin": margin, "h": h},
                   (norm_mean, norm_std), **kwargs)


def linear_curricularface_loss(features, weight, target, t, *, scale=64.0, margin=0.5, **kwargs):
    """CurricularFace of features and class vectors, with the curriculum weight t."""
    return _linear("curricularface", features, weight, target, {"scale": scale, "margin": margin}, (t,), **kwargs)


def softmax_loss(features, weight, target, **kwargs):
    """The modified softmax: CE(x Wᵀ, y), without the [B, C] logits."""
    return _linear("soft", features, weight, target, {}, **kwargs)


def center_loss(features, weight, centers, target, *, lambda_=0.003, reduction="mean", ignore_index=-100,
                label_smoothing=0.0, class_weight=None, chunk_rows=0):
    """The center loss: CE(x Wᵀ, y) + λ · ½‖x − c_y‖², the center term reduced like the CE
    (class weights and smoothing apply to the CE only)."""
    if not (isinstance(lambda_, (int, float)) and math.isfinite(lambda_) and lambda_ >= 0):
        raise ValueError(f"angular: lambda must be a finite number >= 0, got {lambda_!r}")
    ce = softmax_loss(features, weight, target, reduction=reduction, ignore_index=ignore_index,
                      label_smoothing=label_smoothing, class_weight=class_weight, chunk_rows=chunk_rows)
    return ce + lambda_ * torch.ops.angular.center_term(features, centers, target, _reduction(reduction),
                                                        int(ignore_index))


def cosine_matrix(features, weight):
    """Cosines [B, C] of features [B, D] and class vectors [C, D], in float32 (float64 for double)."""
    return torch.ops.angular.cosine_matrix(features, weight)


def margin_logits(features, weight, name, settings=None):
    """The logits without margin [B, C] of the margin called ``name`` ("arcface", ...) with its
    ``settings`` (a dict), for prediction: argmax is the class."""
    names, values = _settings(settings or {})
    return torch.ops.angular.margin_logits(features, weight, name, names, values)
