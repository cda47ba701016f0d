"""Shapes of angular's operators for torch.compile and FakeTensor: no data is read."""

import torch

NONE = 0  # at::Reduction::None


def _compute_dtype(t):
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _loss(input, reduction):
    shape = (input.shape[0],) if reduction == NONE else ()
    return input.new_empty(shape, dtype=_compute_dtype(input))


def _grad(wanted, t, like):
    if wanted and t is not None:
        return torch.empty_like(t, memory_format=torch.contiguous_format)
    return like.new_empty((0,))


@torch.library.register_fake("angular::margin_cross_entropy")
def _(cos, norms, target, margin, settings, statistics, class_weight, reduction, ignore_index, smoothing):
    return _loss(cos, reduction)


@torch.library.register_fake("angular::margin_cross_entropy_forward")
def _(cos, norms, target, margin, settings, statistics, class_weight, reduction, ignore_index, smoothing, mask):
    return _loss(cos, reduction), _grad(mask[0], cos, cos), _grad(mask[1], norms, cos)


@torch.library.register_fake("angular::margin_cross_entropy_backward")
def _(grad, cos, norms, target, margin, settings, statistics, class_weight, reduction, ignore_index, smoothing, mask):
    return _grad(mask[0], cos, cos), _grad(mask[1], norms, cos)


@torch.library.register_fake("angular::linear_margin_cross_entropy")
def _(features, weight, target, margin, settings, statistics, class_weight, reduction, ignore_index, smoothing,
      chunk_rows):
    return _loss(features, reduction)


@torch.library.register_fake("angular::linear_margin_cross_entropy_forward")
def _(features, weight, target, margin, settings, statistics, class_weight, reduction, ignore_index, smoothing,
      chunk_rows, mask):
    return _loss(features, reduction), _grad(mask[0], features, features), _grad(mask[1], weight, weight)


@torch.library.register_fake("angular::linear_margin_cross_entropy_backward")
def _(grad, features, weight, target, margin, settings, statistics, class_weight, reduction, ignore_index, smoothing,
      chunk_rows, mask):
    return _grad(mask[0], features, features), _grad(mask[1], weight, weight)


@torch.library.register_fake("angular::margin_statistics_step")
def _(features, weight, target, margin, settings, statistics, class_weight, reduction, ignore_index, smoothing,
      chunk_rows, momentum):
    return [torch.empty_like(s) for s in statistics]
