#pragma once
// CosFace over cosines: CE with s·(cos θ − m) on the target and s·cos θ elsewhere.

#include <angular/detail/checks.hpp>
#include <angular/detail/linear_margin_cross_entropy.hpp>
#include <angular/detail/margin_cross_entropy.hpp>
#include <angular/options/cosface.hpp>

namespace angular::functional {

/// CosFace loss of cosines `cos` [B, C] and labels `target` [B] (int64).
inline at::Tensor cosface_loss(const at::Tensor& cos, const at::Tensor& target,
                               const CosFaceLossFuncOptions& options = {}) {
  const auto spec = detail::cross_entropy_spec(options);
  detail::check_cosine_loss_inputs(cos, target, spec);
  detail::check_cosface_scale_margin(options.scale(), options.margin());
  return detail::margin_cross_entropy(cos, target, detail::MarginKind::cosface,
                                      {options.scale(), options.margin()}, at::Tensor(), spec);
}

/// CosFace loss of features [B, D] and class vectors `weight` [C, D] (one dtype and device),
/// without building the [B, C] cosines (see linear_arc_loss).
inline at::Tensor linear_cosface_loss(const at::Tensor& features, const at::Tensor& weight,
                                      const at::Tensor& target, const CosFaceLossFuncOptions& options = {}) {
  const auto spec = detail::cross_entropy_spec(options);
  detail::check_feature_loss_inputs(features, weight, target, spec, options.chunk_rows());
  detail::check_cosface_scale_margin(options.scale(), options.margin());
  return detail::linear_margin_cross_entropy(features, weight, target, detail::MarginKind::cosface,
                                             {options.scale(), options.margin()}, at::Tensor(), spec,
                                             {true, options.chunk_rows()});
}

}  // namespace angular::functional
