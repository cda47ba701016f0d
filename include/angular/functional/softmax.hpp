#pragma once
// The modified softmax loss (paper eq. 2): CE(x Wᵀ, y), no bias.

#include <angular/detail/margin_loss.hpp>
#include <angular/options/softmax.hpp>

namespace angular::functional {

/// Logits x Wᵀ [B, C] of features [B, D] and class vectors `weight` [C, D], computed in
/// float32 (float64 if either is double).
inline at::Tensor linear_logits(const at::Tensor& features, const at::Tensor& weight) {
  detail::check_features(features, weight, "weight");
  return detail::linear_logits(features, weight);
}

/// Cosines ŵ_j · x̂_i [B, C] of features [B, D] and class vectors `weight` [C, D], computed in
/// float32 (float64 if either is double).
inline at::Tensor cosine_matrix(const at::Tensor& features, const at::Tensor& weight) {
  detail::check_features(features, weight, "weight");
  const auto dtype = detail::compute_dtype(features, weight);
  return detail::cosine_matrix(features.to(dtype), weight.to(dtype));
}

/// Modified softmax loss of features [B, D], class vectors `weight` [C, D] (one dtype and
/// device), labels [B]: CE(x Wᵀ, y) without building the [B, C] logits, in row chunks of
/// options.chunk_rows().
inline at::Tensor softmax_loss(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& target,
                               const SoftmaxLossFuncOptions& options = {}) {
  return detail::feature_margin_loss(features, weight, target, options);
}

/// softmax_loss with the module's options (the cross-entropy settings).
inline at::Tensor softmax_loss(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& target,
                               const SoftmaxLossOptions& options) {
  return softmax_loss(features, weight, target, detail::func_options_of(options));
}

}  // namespace angular::functional
