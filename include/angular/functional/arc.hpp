#pragma once
// The paper's angular loss: CE(k (π/2 − arccos c), y), over cosines and over features.

#include <angular/detail/margin_loss.hpp>
#include <angular/options/arc.hpp>

namespace angular::functional {

/// Arc logits k (π/2 − θ) of cosines [B, C]; their argmax is the predicted class.
inline at::Tensor arc_logits(const at::Tensor& cos, double k) {
  detail::check_floating_matrix(cos, "cos");
  detail::check_arc_k(k);
  return detail::arc_logits(cos.to(detail::compute_dtype(cos)), k);
}

/// Angular loss of cosines `cos` [B, C] (ŵ_j · x̂_i) and labels `target` [B] (int64).
/// Runs the fused kernel of kernel_path(cos), else the composite reference.
inline at::Tensor arc_loss(const at::Tensor& cos, const at::Tensor& target, const ArcLossFuncOptions& options = {}) {
  return detail::cosine_margin_loss(cos, target, options);
}

/// Angular loss of features [B, D] and class vectors `weight` [C, D] (one dtype and device):
/// the value of arc_loss(cosine_matrix(features, weight), target, options) without building
/// the [B, C] cosines, in row chunks of options.chunk_rows().
inline at::Tensor linear_arc_loss(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& target,
                                  const ArcLossFuncOptions& options = {}) {
  return detail::feature_margin_loss(features, weight, target, options);
}

/// arc_loss with the module's options (k and the cross-entropy settings).
inline at::Tensor arc_loss(const at::Tensor& cos, const at::Tensor& target, const ArcLossOptions& options) {
  return arc_loss(cos, target, detail::func_options_of(options));
}

}  // namespace angular::functional
