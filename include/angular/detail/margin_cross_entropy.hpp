#pragma once
// The margin cross-entropy of cosines, on the path kernel_path() picks: the fused autograd
// function where the device has kernels, else the composite reference (which the operators'
// Autograd kernels also take there, ops/autograd.hpp).

#include <angular/detail/autograd/margin_cross_entropy.hpp>
#include <angular/detail/checks.hpp>
#include <angular/detail/reference.hpp>
#include <angular/kernel_path.hpp>

#include <c10/util/Exception.h>

namespace angular::detail {

/// Composite logits of a margin for finite class cosines [B, C]; `row_params` [B, P] holds
/// the margin's per-row parameters (row_parameter_count).
inline at::Tensor policy_logits(const at::Tensor& cos, const at::Tensor& target, MarginKind margin,
                                const MarginParams& params, const at::Tensor& row_params, int64_t ignore_index) {
  const double s = params.scale, m = params.margin;
  switch (margin) {
    case MarginKind::arc: return arc_logits(cos, params.k);
    case MarginKind::arcface: return arcface_logits(cos, target, s, m, ignore_index, params.exact_gradient, params.continuation);
    case MarginKind::cosface: return cosface_logits(cos, target, s, params.cosine_margin, ignore_index);
    case MarginKind::normface: return cos * s;
    case MarginKind::combined:
      return combined_logits(cos, target, s, params.angle_factor, m, params.cosine_margin, ignore_index);
    case MarginKind::sphereface:
      return sphereface_logits(cos, target, row_params.select(1, 0), static_cast<int64_t>(params.angle_factor),
                               params.lambda, ignore_index);
    case MarginKind::adaface: return adaface_logits(cos, target, row_params, s, ignore_index);
    case MarginKind::curricularface:
      return curricularface_logits(cos, target, row_params.select(1, 0), s, m, ignore_index);
  }
  TORCH_CHECK(false, "angular: unknown MarginKind ", static_cast<int>(margin));
}

/// Composite logits of a margin, for the reference path, from cos [B, C·K] (K sub-centers per
/// class): policy_logits of the class cosines + 0·c, NaN wherever a cosine is NaN or infinite,
/// which the clamp before arccos (or an −∞ logit's zero exponential) would otherwise hide; the
/// row's loss is then NaN, as the fused kernels give it.
inline at::Tensor margin_logits(const at::Tensor& cos, const at::Tensor& target, MarginKind margin,
                                const MarginParams& params, const at::Tensor& row_params, int64_t ignore_index) {
  const at::Tensor c = class_cosines(cos, params.sub_centers);
  return policy_logits(c, target, margin, params, row_params, ignore_index) + c * 0;
}

/// Warns, once per program, that CUDA tensors on `device` take the composite path because
/// no fused CUDA kernels are installed.
inline void warn_if_cuda_kernels_missing(const at::Device& device) {
  if (!device.is_cuda() || cuda_kernels_registered() || composite_path_forced()) return;
  TORCH_WARN_ONCE(
      "angular: the fused CUDA kernels are not installed, so losses over CUDA tensors take the "
      "composite ATen path (slower, and several [B, C] tensors kept for the backward). From C++, "
      "link the CMake target angular::cuda into the program (where it goes into a static library, "
      "also call angular::register_cuda_kernels() once); from Python, install the package built "
      "with them (ANGULAR_CUDA=1).");
}

/// The composite reference of a validated problem: ATen ops, which autograd differentiates
/// (also more than once).
inline at::Tensor composite_margin_cross_entropy(const CosineProblem& p) {
  warn_if_cuda_kernels_missing(p.cos.device());
  const auto dtype = compute_dtype(p.cos);
  const at::Tensor row_params = p.row_params.defined() ? p.row_params.to(dtype) : p.row_params;
  return cross_entropy(margin_logits(p.cos.to(dtype), p.target, p.margin, p.params, row_params, p.spec.ignore_index),
                       p.target, p.spec);
}

/// The margin cross-entropy of a validated problem over cosines, on the path kernel_path()
/// picks: the fused autograd function, or the composite reference.
inline at::Tensor margin_cross_entropy(const CosineProblem& p) {
  if (kernel_path(p.cos) == KernelPath::composite) return composite_margin_cross_entropy(p);
  return FusedMarginCrossEntropy::apply(p.cos, or_empty(p.row_params, p.cos), p);
}

}  // namespace angular::detail
