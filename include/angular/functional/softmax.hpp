#pragma once
// The modified softmax loss (paper eq. 2): CE(x Wᵀ, y), no bias.

#include <angular/detail/checks.hpp>
#include <angular/detail/linear_margin_cross_entropy.hpp>
#include <angular/detail/reference.hpp>
#include <angular/options/softmax.hpp>

namespace angular::functional {

/// Logits x Wᵀ [B, C] of features [B, D] and class vectors `weight` [C, D], computed in
/// float32 (float64 if either is double).
inline at::Tensor linear_logits(const at::Tensor& features, const at::Tensor& weight) {
  detail::check_features(features, weight, "weight");
  return detail::linear_logits(features, weight);
}

/// Modified softmax loss of features [B, D], class vectors `weight` [C, D] (one dtype and
/// device), labels [B]: CE(x Wᵀ, y) without building the [B, C] logits, in row chunks of
/// options.chunk_rows().
inline at::Tensor softmax_loss(const at::Tensor& features, const at::Tensor& weight,
                               const at::Tensor& target,
                               const SoftmaxLossFuncOptions& options = {}) {
  const auto spec = detail::cross_entropy_spec(options);
  detail::check_feature_loss_inputs(features, weight, target, spec, options.chunk_rows());
  return detail::linear_margin_cross_entropy(features, weight, target, detail::kIdentityMargin, detail::kIdentityParams,
                                             at::Tensor(), spec, {false, options.chunk_rows()});
}

inline at::Tensor softmax_loss(const at::Tensor& features, const at::Tensor& weight,
                               const at::Tensor& target, const SoftmaxLossOptions& options) {
  return softmax_loss(features, weight, target,
                      detail::with_cross_entropy_args(SoftmaxLossFuncOptions(), options));
}

}  // namespace angular::functional
