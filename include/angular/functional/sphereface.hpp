#pragma once
// SphereFace (A-Softmax) over cosines and feature norms: logits ‖x_i‖·cos θ_ij, and on the
// label ‖x_i‖·(λ·cos θ + ψ(θ))/(1 + λ).

#include <angular/detail/checks.hpp>
#include <angular/detail/linear_margin_cross_entropy.hpp>
#include <angular/detail/margin_cross_entropy.hpp>
#include <angular/options/sphereface.hpp>

namespace angular::detail {

template <class Options>
MarginParams sphereface_params(const Options& options) {
  check_sphereface_margin(options.margin(), options.lambda());
  MarginParams params{1.0, options.margin()};
  params.lambda = options.lambda();
  return params;
}

}  // namespace angular::detail

namespace angular::functional {

/// SphereFace loss of cosines `cos` [B, C], the features' norms `norms` [B] and labels [B]
/// (int64). Both cos and norms get their gradient.
inline at::Tensor sphereface_loss(const at::Tensor& cos, const at::Tensor& norms, const at::Tensor& target,
                                  const SphereFaceLossFuncOptions& options = {}) {
  const auto spec = detail::cross_entropy_spec(options);
  detail::check_cosine_loss_inputs(cos, target, spec);
  detail::check_row_vector(norms, "norms", cos, "cos");
  return detail::margin_cross_entropy(cos, target, detail::MarginKind::sphereface, detail::sphereface_params(options),
                                      norms.unsqueeze(1), spec);
}

/// SphereFace loss of features [B, D] and class vectors `weight` [C, D] (one dtype and
/// device): sphereface_loss(cosine_matrix(features, weight), ‖features‖, target) without the
/// [B, C] cosines.
inline at::Tensor linear_sphereface_loss(const at::Tensor& features, const at::Tensor& weight,
                                         const at::Tensor& target, const SphereFaceLossFuncOptions& options = {}) {
  const auto spec = detail::cross_entropy_spec(options);
  detail::check_feature_loss_inputs(features, weight, target, spec, options.chunk_rows());
  return detail::linear_margin_cross_entropy(features, weight, target, detail::MarginKind::sphereface,
                                             detail::sphereface_params(options), at::Tensor(), spec,
                                             {true, options.chunk_rows()});
}

}  // namespace angular::functional
