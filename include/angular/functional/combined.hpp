#pragma once
// The combined margin over cosines: CE with s·(cos(m1·θ + m2) − m3) on the target and s·cos θ
// elsewhere.

#include <angular/detail/checks.hpp>
#include <angular/detail/linear_margin_cross_entropy.hpp>
#include <angular/detail/margin_cross_entropy.hpp>
#include <angular/options/combined.hpp>

namespace angular::detail {

template <class Options>
MarginParams combined_params(const Options& options) {
  check_combined_margins(options.scale(), options.m1(), options.m2(), options.m3());
  MarginParams params{options.scale(), options.m2()};
  params.angle_factor = options.m1();
  params.cosine_margin = options.m3();
  return params;
}

}  // namespace angular::detail

namespace angular::functional {

/// Combined-margin loss of cosines `cos` [B, C] and labels `target` [B] (int64). Where
/// m1·θ + m2 > π the label's logit continues as s·(c − m3 − (cos θ₀ + cos m2 + m2·sin m2)),
/// θ₀ = (π − m2)/m1: monotone, and ArcFace's continuation for m1 = 1. m1 = 1, m3 = 0 is
/// ArcFace; m1 = 1, m2 = 0 is CosFace.
inline at::Tensor combined_margin_loss(const at::Tensor& cos, const at::Tensor& target,
                                       const CombinedMarginLossFuncOptions& options = {}) {
  const auto spec = detail::cross_entropy_spec(options);
  detail::check_cosine_loss_inputs(cos, target, spec);
  return detail::margin_cross_entropy(cos, target, detail::MarginKind::combined, detail::combined_params(options),
                                      at::Tensor(), spec);
}

/// The combined-margin loss of features [B, D] and class vectors `weight` [C, D] (one dtype
/// and device), without building the [B, C] cosines.
inline at::Tensor linear_combined_margin_loss(const at::Tensor& features, const at::Tensor& weight,
                                              const at::Tensor& target,
                                              const CombinedMarginLossFuncOptions& options = {}) {
  const auto spec = detail::cross_entropy_spec(options);
  detail::check_feature_loss_inputs(features, weight, target, spec, options.chunk_rows());
  return detail::linear_margin_cross_entropy(features, weight, target, detail::MarginKind::combined,
                                             detail::combined_params(options), at::Tensor(), spec,
                                             {true, options.chunk_rows()});
}

}  // namespace angular::functional
