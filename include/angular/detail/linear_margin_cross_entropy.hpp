#pragma once
// The margin cross-entropy of features and class vectors, on the path kernel_path() picks: the
// features-level fused function where the device has row kernels, else the composite
// reference over the [B, C] cosines (or logits).

#include <angular/detail/autograd/linear_margin_cross_entropy.hpp>
#include <angular/detail/margin_cross_entropy.hpp>

namespace angular::detail {

/// The composite reference of a validated features-level problem, over the [B, C] cosines.
inline at::Tensor composite_linear_margin_cross_entropy(const LinearProblem& p) {
  if (!p.normalize) {
    warn_if_cuda_kernels_missing(p.features.device());
    const at::Tensor logits =
        margin_logits(linear_logits(p.features, p.weight), p.target, p.margin, p.params, {}, p.spec.ignore_index);
    return cross_entropy(logits, p.target, p.spec);
  }
  const auto dtype = compute_dtype(p.features);
  const at::Tensor x = p.features.to(dtype);
  const at::Tensor row_params = margin_scales_rows(p.margin) ? feature_norms(x).unsqueeze(1) : p.row_params;
  return composite_margin_cross_entropy(
      {cosine_matrix(x, p.weight.to(dtype)), row_params, p.target, p.margin, p.params, p.spec});
}

/// The margin cross-entropy of a validated features-level problem.
inline at::Tensor linear_margin_cross_entropy(const LinearProblem& p) {
  if (kernel_path(p.features) == KernelPath::composite) return composite_linear_margin_cross_entropy(p);
  return FusedLinearMarginCrossEntropy::apply(p.features, p.weight, p);
}

}  // namespace angular::detail
