#pragma once
// The paper's angular loss over cosines: CE(k (π/2 − arccos c), y).

#include <angular/detail/checks.hpp>
#include <angular/detail/linear_margin_cross_entropy.hpp>
#include <angular/detail/margin_cross_entropy.hpp>
#include <angular/detail/reference.hpp>
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
inline at::Tensor arc_loss(const at::Tensor& cos, const at::Tensor& target,
                           const ArcLossFuncOptions& options = {}) {
  const auto spec = detail::cross_entropy_spec(options);
  detail::check_cosine_loss_inputs(cos, target, spec);
  const double k = options.k().value_or(default_arc_k(cos.size(1)));
  detail::check_arc_k(k);
  return detail::margin_cross_entropy(cos, target, detail::MarginKind::arc, {k, 0.0}, at::Tensor(), spec);
}

/// Angular loss of features [B, D] and class vectors `weight` [C, D] (one dtype and device):
/// the value of arc_loss(cosine_matrix(features, weight), target, options) without building
/// the [B, C] cosines, in row chunks of options.chunk_rows().
inline at::Tensor linear_arc_loss(const at::Tensor& features, const at::Tensor& weight,
                                  const at::Tensor& target, const ArcLossFuncOptions& options = {}) {
  const auto spec = detail::cross_entropy_spec(options);
  detail::check_feature_loss_inputs(features, weight, target, spec, options.chunk_rows());
  const double k = options.k().value_or(default_arc_k(weight.size(0)));
  detail::check_arc_k(k);
  return detail::linear_margin_cross_entropy(features, weight, target, detail::MarginKind::arc, {k, 0.0}, at::Tensor(),
                                             spec, {true, options.chunk_rows()});
}

/// The same, taking the module's options (k and the cross-entropy settings).
inline at::Tensor arc_loss(const at::Tensor& cos, const at::Tensor& target,
                           const ArcLossOptions& options) {
  return arc_loss(cos, target,
                  detail::with_cross_entropy_args(ArcLossFuncOptions().k(options.k()), options));
}

}  // namespace angular::functional
