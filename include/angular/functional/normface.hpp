#pragma once
// NormFace: CE over s·cos θ, no margin.

#include <angular/detail/margin_loss.hpp>
#include <angular/options/normface.hpp>

namespace angular::functional {

/// NormFace loss of cosines `cos` [B, C] and labels `target` [B] (int64).
inline at::Tensor normface_loss(const at::Tensor& cos, const at::Tensor& target,
                                const NormFaceLossFuncOptions& options = {}) {
  return detail::cosine_margin_loss(cos, target, options);
}

/// NormFace loss of features [B, D] and class vectors `weight` [C, D] (one dtype and device),
/// without building the [B, C] cosines (see linear_arc_loss).
inline at::Tensor linear_normface_loss(const at::Tensor& features, const at::Tensor& weight,
                                       const at::Tensor& target, const NormFaceLossFuncOptions& options = {}) {
  return detail::feature_margin_loss(features, weight, target, options);
}

}  // namespace angular::functional
