#pragma once
// SphereFace (A-Softmax) over cosines and feature norms: logits ‖x_i‖·cos θ_ij, and on the
// label ‖x_i‖·(λ·cos θ + ψ(θ))/(1 + λ).

#include <angular/detail/margin_loss.hpp>
#include <angular/options/sphereface.hpp>

namespace angular::functional {

/// SphereFace loss of cosines `cos` [B, C], the features' norms `norms` [B] and labels [B]
/// (int64). Both cos and norms get their gradient.
inline at::Tensor sphereface_loss(const at::Tensor& cos, const at::Tensor& norms, const at::Tensor& target,
                                  const SphereFaceLossFuncOptions& options = {}) {
  detail::MarginInputs in;
  in.norms = norms;
  return detail::cosine_margin_loss(cos, target, options, in);
}

/// SphereFace loss of features [B, D] and class vectors `weight` [C, D] (one dtype and
/// device): sphereface_loss(cosine_matrix(features, weight), ‖features‖, target) without the
/// [B, C] cosines.
inline at::Tensor linear_sphereface_loss(const at::Tensor& features, const at::Tensor& weight,
                                         const at::Tensor& target, const SphereFaceLossFuncOptions& options = {}) {
  return detail::feature_margin_loss(features, weight, target, options);
}

}  // namespace angular::functional
