#pragma once
// The margin cross-entropy of cosines, on the path kernel_path() picks: the fused autograd
// function where the device has kernels, else the composite reference.

#include <angular/detail/autograd/margin_cross_entropy.hpp>
#include <angular/detail/checks.hpp>
#include <angular/detail/reference.hpp>
#include <angular/kernel_path.hpp>

#include <c10/util/Exception.h>

namespace angular::detail {

/// Composite logits of a margin for finite cosines.
inline at::Tensor policy_logits(const at::Tensor& cos, const at::Tensor& target, MarginKind margin,
                                MarginParams params, int64_t ignore_index) {
  switch (margin) {
    case MarginKind::arc: return arc_logits(cos, params.scale);
    case MarginKind::arcface:
      return arcface_logits(cos, target, params.scale, params.margin, ignore_index);
    case MarginKind::cosface:
      return cosface_logits(cos, target, params.scale, params.margin, ignore_index);
    case MarginKind::normface: return cos * params.scale;
  }
  TORCH_CHECK(false, "angular: unknown MarginKind ", static_cast<int>(margin));
}

/// Composite logits of a margin, for the reference path: policy_logits + 0·cos, NaN wherever
/// a cosine is NaN or infinite, which the clamp before arccos (or an −∞ logit's zero
/// exponential) would otherwise hide; the row's loss is then NaN, as the fused kernels give it.
inline at::Tensor margin_logits(const at::Tensor& cos, const at::Tensor& target, MarginKind margin,
                                MarginParams params, int64_t ignore_index) {
  return policy_logits(cos, target, margin, params, ignore_index) + cos * 0;
}

/// Warns, once per program, that CUDA tensors on `device` take the composite path because
/// no fused CUDA kernels are installed.
inline void warn_if_cuda_kernels_missing(const at::Device& device) {
  if (!device.is_cuda() || cuda_kernels_registered() || composite_path_forced()) return;
  TORCH_WARN_ONCE(
      "angular: the fused CUDA kernels are not installed, so losses over CUDA tensors take the "
      "composite ATen path (slower, and several [B, C] tensors kept for the backward). Link the "
      "CMake target angular::cuda into the program; where it goes into a static library, also "
      "call angular::register_cuda_kernels() once.");
}

/// The margin cross-entropy of cosines. Inputs are validated by the caller.
inline at::Tensor margin_cross_entropy(const at::Tensor& cos, const at::Tensor& target,
                                       MarginKind margin, MarginParams params,
                                       const CrossEntropySpec& spec) {
  if (kernel_path(cos) == KernelPath::composite) {
    warn_if_cuda_kernels_missing(cos.device());
    const at::Tensor c = cos.to(compute_dtype(cos));
    return cross_entropy(margin_logits(c, target, margin, params, spec.ignore_index), target, spec);
  }
  return FusedMarginCrossEntropy::apply(cos, target, margin, params, spec);
}

}  // namespace angular::detail
