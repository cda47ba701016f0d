#pragma once
// The combined margin: CE with s·(cos(m1·θ + m2) − m3) on the target and s·cos θ elsewhere.

#include <angular/detail/margin_loss.hpp>
#include <angular/options/combined.hpp>

namespace angular::functional {

/// Combined-margin loss of cosines `cos` [B, C] and labels `target` [B] (int64). Where
/// m1·θ + m2 > π the label's logit continues as s·(c − m3 − (cos θ₀ + cos m2 + m2·sin m2)),
/// θ₀ = (π − m2)/m1: monotone, and ArcFace's continuation for m1 = 1. m1 = 1, m3 = 0 is
/// ArcFace; m1 = 1, m2 = 0 is CosFace.
inline at::Tensor combined_margin_loss(const at::Tensor& cos, const at::Tensor& target,
                                       const CombinedMarginLossFuncOptions& options = {}) {
  return detail::cosine_margin_loss(cos, target, options);
}

/// The combined-margin loss of features [B, D] and class vectors `weight` [C, D] (one dtype
/// and device), without building the [B, C] cosines.
inline at::Tensor linear_combined_margin_loss(const at::Tensor& features, const at::Tensor& weight,
                                              const at::Tensor& target,
                                              const CombinedMarginLossFuncOptions& options = {}) {
  return detail::feature_margin_loss(features, weight, target, options);
}

}  // namespace angular::functional
