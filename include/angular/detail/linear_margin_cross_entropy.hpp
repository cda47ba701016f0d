#pragma once
// The margin cross-entropy of features and class vectors, on the path kernel_path() picks: the
// features-level fused function where the device has row kernels, else the composite
// reference over the [B, C] cosines (or logits).

#include <angular/detail/autograd/linear_margin_cross_entropy.hpp>
#include <angular/detail/margin_cross_entropy.hpp>

namespace angular::detail {

/// How a features-level loss forms its logits: from cosines (normalised rows) through a
/// margin, or as the raw products x Wᵀ (the modified softmax: `normalize` false, the margin
/// NormFace's with scale 1, the identity).
struct LinearSpec {
  bool normalize = true;
  int64_t chunk_rows = 0;  // 0: automatic
};

/// The margin cross-entropy of features [B, D] and weight [C·K, D] (K = params.sub_centers)
/// with the margin's per-row parameters (row_params [B, P], or undefined where P = 0; for a
/// margin that scales rows they are the features' norms, which this function computes),
/// validated by the caller (check_feature_loss_inputs).
inline at::Tensor linear_margin_cross_entropy(const at::Tensor& features, const at::Tensor& weight,
                                              const at::Tensor& target, MarginKind margin,
                                              const MarginParams& params, const at::Tensor& row_params,
                                              const CrossEntropySpec& spec, const LinearSpec& linear) {
  if (kernel_path(features) == KernelPath::composite) {
    if (!linear.normalize) {
      warn_if_cuda_kernels_missing(features.device());
      const at::Tensor logits =
          margin_logits(linear_logits(features, weight), target, margin, params, at::Tensor(), spec.ignore_index);
      return cross_entropy(logits, target, spec);
    }
    const auto dtype = compute_dtype(features);
    const at::Tensor x = features.to(dtype);
    const at::Tensor p = margin_scales_rows(margin) ? feature_norms(x).unsqueeze(1) : row_params;
    return margin_cross_entropy(cosine_matrix(x, weight.to(dtype)), target, margin, params, p, spec);
  }
  return FusedLinearMarginCrossEntropy::apply(features, weight,
                                              row_params.defined() ? row_params : at::empty({0}, features.options()),
                                              target, margin, params, spec, linear.normalize, linear.chunk_rows);
}

}  // namespace angular::detail
