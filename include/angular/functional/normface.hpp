#pragma once
// NormFace over cosines: CE over s·cos θ.

#include <angular/detail/checks.hpp>
#include <angular/detail/linear_margin_cross_entropy.hpp>
#include <angular/detail/margin_cross_entropy.hpp>
#include <angular/options/normface.hpp>

namespace angular::functional {

/// NormFace loss of cosines `cos` [B, C] and labels `target` [B] (int64).
inline at::Tensor normface_loss(const at::Tensor& cos, const at::Tensor& target,
                                const NormFaceLossFuncOptions& options = {}) {
  const auto spec = detail::cross_entropy_spec(options);
  detail::check_cosine_loss_inputs(cos, target, spec);
  detail::check_scale(options.scale());
  return detail::margin_cross_entropy(cos, target, detail::MarginKind::normface,
                                      {options.scale(), 0.0}, at::Tensor(), spec);
}

/// NormFace loss of features [B, D] and class vectors `weight` [C, D] (one dtype and device),
/// without building the [B, C] cosines (see linear_arc_loss).
inline at::Tensor linear_normface_loss(const at::Tensor& features, const at::Tensor& weight,
                                       const at::Tensor& target, const NormFaceLossFuncOptions& options = {}) {
  const auto spec = detail::cross_entropy_spec(options);
  detail::check_feature_loss_inputs(features, weight, target, spec, options.chunk_rows());
  detail::check_scale(options.scale());
  return detail::linear_margin_cross_entropy(features, weight, target, detail::MarginKind::normface,
                                             {options.scale(), 0.0}, at::Tensor(), spec, {true, options.chunk_rows()});
}

}  // namespace angular::functional
