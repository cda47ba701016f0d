#pragma once
// ArcFace: CE with s·cos(θ + m) on the target and s·cos θ elsewhere, over cosines and over
// features.

#include <angular/detail/margin_loss.hpp>
#include <angular/options/arcface.hpp>

namespace angular::functional {

/// ArcFace loss of cosines `cos` [B, C] and labels `target` [B] (int64). The gradient is the
/// exact derivative, including the θ + m > π continuation s·(c − m sin m), unless
/// options.exact_gradient() is false (then s on the label, straight through). Runs the fused
/// kernel of kernel_path(cos), else the composite reference.
inline at::Tensor arcface_loss(const at::Tensor& cos, const at::Tensor& target,
                               const ArcFaceLossFuncOptions& options = {}) {
  return detail::cosine_margin_loss(cos, target, options);
}

/// ArcFace loss of features [B, D] and class vectors `weight` [C, D] (one dtype and device):
/// the value of arcface_loss(cosine_matrix(features, weight), target, options) without
/// building the [B, C] cosines, in row chunks of options.chunk_rows().
inline at::Tensor linear_arcface_loss(const at::Tensor& features, const at::Tensor& weight,
                                      const at::Tensor& target, const ArcFaceLossFuncOptions& options = {}) {
  return detail::feature_margin_loss(features, weight, target, options);
}

/// arcface_loss with the module's options (its settings and the cross-entropy's).
inline at::Tensor arcface_loss(const at::Tensor& cos, const at::Tensor& target, const ArcFaceLossOptions& options) {
  return arcface_loss(cos, target, detail::func_options_of(options));
}

}  // namespace angular::functional
