#pragma once
// CosFace: CE with s·(cos θ − m) on the target and s·cos θ elsewhere.

#include <angular/detail/margin_loss.hpp>
#include <angular/options/cosface.hpp>

namespace angular::functional {

/// CosFace loss of cosines `cos` [B, C] and labels `target` [B] (int64).
inline at::Tensor cosface_loss(const at::Tensor& cos, const at::Tensor& target,
                               const CosFaceLossFuncOptions& options = {}) {
  return detail::cosine_margin_loss(cos, target, options);
}

/// CosFace loss of features [B, D] and class vectors `weight` [C, D] (one dtype and device),
/// without building the [B, C] cosines (see linear_arc_loss).
inline at::Tensor linear_cosface_loss(const at::Tensor& features, const at::Tensor& weight,
                                      const at::Tensor& target, const CosFaceLossFuncOptions& options = {}) {
  return detail::feature_margin_loss(features, weight, target, options);
}

}  // namespace angular::functional
