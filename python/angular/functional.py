"""angular's losses as functions, over cosines and over features + class vectors.

One function per margin of the C++ table over cosines (``arcface_loss(cos, target, ...)``) and
over features and class vectors (``linear_arcface_loss(features, weight, target, ...)``, no
[B, C] tensor built); ``softmax_loss`` and ``center_loss`` over features. Each takes the margin's
settings by keyword with the C++ defaults, and, like ``torch.nn.functional.cross_entropy``,
``reduction`` ("mean", "sum" or "none"), ``ignore_index``, ``label_smoothing`` and per-class
weights ``class_weight`` (``weight`` is always the class vectors W). The functions are written
from the table (angular/_codegen.py): ``help()`` and ``inspect.signature`` show each one's.
"""

import math
from typing import Optional

import torch
from torch import Tensor

from . import _codegen, _table

__all__ = [*(m.function for m in _table.margins if m.normalized), *(m.linear_function for m in _table.margins),
           "center_loss", "cosine_matrix", "margin_logits", "margin_settings", "composite_path"]

_REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}
_setting_tensor = _table.setting_tensor


def reduction_code(reduction: str) -> int:
    """The operators' code of a reduction name (at::Reduction)."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"angular: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return _REDUCTIONS[reduction]


def _cosine_loss(margin, cos, norms, target, statistics, settings, reduction, ignore_index, label_smoothing,
                 class_weight):
    return torch.ops.angular.margin_cross_entropy(cos, norms, target, margin, settings, statistics, class_weight,
                                                  reduction_code(reduction), int(ignore_index),
                                                  float(label_smoothing))


def _feature_loss(margin, features, weight, target, statistics, settings, reduction, ignore_index, label_smoothing,
                  class_weight, chunk_rows):
    return torch.ops.angular.linear_margin_cross_entropy(features, weight, target, margin, settings, statistics,
                                                         class_weight, reduction_code(reduction), int(ignore_index),
                                                         float(label_smoothing), int(chunk_rows))


exec(compile(_codegen.functional_source(), "<angular.functional, written from the C++ table>", "exec"), globals())


def center_loss(features: Tensor, weight: Tensor, centers: Tensor, target: Tensor, *,
                lambda_: float = _table.center_settings[0].default, reduction: str = "mean", ignore_index: int = -100,
                label_smoothing: float = 0.0, class_weight: Optional[Tensor] = None, chunk_rows: int = 0) -> Tensor:
    """The center loss (Wen et al. 2016): CE(x Wᵀ, y) + λ·½‖x − c_y‖², the center term reduced like
    the cross-entropy (class weights and smoothing apply to the CE only).

    Args:
        features: features [B, D]
        weight: class vectors W [C, D], of the features' dtype
        centers: class centers [C, D]
        target: labels [B] (int64) in [0, C), or ignore_index
        lambda_: {lambda}
        the cross-entropy's arguments and chunk_rows: as linear_arcface_loss's
    """
    return torch.ops.angular.center_loss(features, weight, centers, target, _setting_tensor([lambda_]), class_weight,
                                         reduction_code(reduction), int(ignore_index), float(label_smoothing),
                                         int(chunk_rows))


center_loss.__doc__ = center_loss.__doc__.format(
    **{s.name: f"{s.doc} (default {_codegen.default(s)})" for s in _table.center_settings})


def cosine_matrix(features: Tensor, weight: Tensor) -> Tensor:
    """Cosines [B, C] of features [B, D] and class vectors [C, D], in float32 (float64 for double)."""
    return torch.ops.angular.cosine_matrix(features, weight)


def margin_logits(features: Tensor, weight: Tensor, name: str, settings: Optional[dict] = None) -> Tensor:
    """The logits without margin [B, C] of the margin called ``name`` ("arcface", ...) with its
    ``settings`` (a dict by Python name; the others take their defaults), for prediction: argmax
    is the class."""
    values = [math.nan if v is None else float(v) for v in _values(name, settings or {})]
    return torch.ops.angular.margin_logits(features, weight, name, values)


def margin_settings(name: str) -> dict:
    """The settings of the margin called ``name`` ("arcface", ...), by Python name, with their C++ defaults."""
    return {s.python: s.default for s in _margin(name).settings}


def _margin(name):
    margin = _table.find(name)
    if margin is None:
        raise ValueError(f"angular: unknown margin {name!r}; the margins are {', '.join(_table.names())}")
    return margin


def _values(name, settings):
    """The values of the margin ``name``'s settings from a dict by Python (or C++) name, in the
    table's order, each missing one its default."""
    margin = _margin(name)
    known = {s.python for s in margin.settings} | {s.name for s in margin.settings}
    unknown = set(settings) - known
    if unknown:
        raise ValueError(f"angular: the {name} margin has no setting {sorted(unknown)[0]!r}; its settings are "
                         f"{', '.join(s.python for s in margin.settings) or 'none'}")
    return [settings.get(s.python, settings.get(s.name, s.default)) for s in margin.settings]


class composite_path:
    """While it lasts, the losses computed on this thread take the composite ATen path: slower,
    several [B, C] tensors kept, but differentiable more than once (a gradient penalty through
    the loss), which the fused kernels are not. Eager mode only."""

    def __enter__(self):
        self._previous = torch.ops.angular.composite_path(True)
        return self

    def __exit__(self, *exc):
        torch.ops.angular.composite_path(self._previous)
