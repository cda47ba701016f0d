#pragma once
// ArcFace over cosines: CE with s·cos(θ + m) on the target and s·cos θ elsewhere.

#include <angular/detail/checks.hpp>
#include <angular/detail/linear_margin_cross_entropy.hpp>
#include <angular/detail/margin_cross_entropy.hpp>
#include <angular/options/arcface.hpp>

namespace angular::detail {

/// The margin numbers of ArcFace options.
template <class Options>
MarginParams arcface_params(const Options& options) {
  MarginParams params{options.scale(), options.margin()};
  params.exact_gradient = options.exact_gradient();
  return params;
}

}  // namespace angular::detail

namespace angular::functional {

/// ArcFace loss of cosines `cos` [B, C] and labels `target` [B] (int64). The gradient is the
/// exact derivative, including the θ + m > π continuation s·(c − m sin m), unless
/// options.exact_gradient() is false (then s on the label, straight through). Runs the fused
/// kernel of kernel_path(cos), else the composite reference.
inline at::Tensor arcface_loss(const at::Tensor& cos, const at::Tensor& target,
                               const ArcFaceLossFuncOptions& options = {}) {
  const auto spec = detail::cross_entropy_spec(options);
  detail::check_cosine_loss_inputs(cos, target, spec);
  detail::check_arcface_scale_margin(options.scale(), options.margin());
  return detail::margin_cross_entropy(cos, target, detail::MarginKind::arcface, detail::arcface_params(options),
                                      at::Tensor(), spec);
}

/// ArcFace loss of features [B, D] and class vectors `weight` [C, D] (one dtype and device):
/// the value of arcface_loss(cosine_matrix(features, weight), target, options) without
/// building the [B, C] cosines, in row chunks of options.chunk_rows().
inline at::Tensor linear_arcface_loss(const at::Tensor& features, const at::Tensor& weight,
                                      const at::Tensor& target, const ArcFaceLossFuncOptions& options = {}) {
  const auto spec = detail::cross_entropy_spec(options);
  detail::check_feature_loss_inputs(features, weight, target, spec, options.chunk_rows());
  detail::check_arcface_scale_margin(options.scale(), options.margin());
  return detail::linear_margin_cross_entropy(features, weight, target, detail::MarginKind::arcface,
                                             detail::arcface_params(options), at::Tensor(), spec,
                                             {true, options.chunk_rows()});
}

/// The same, taking the module's options (scale, margin and the cross-entropy settings).
inline at::Tensor arcface_loss(const at::Tensor& cos, const at::Tensor& target,
                               const ArcFaceLossOptions& options) {
  return arcface_loss(cos, target,
                      detail::with_cross_entropy_args(
                          ArcFaceLossFuncOptions()
                              .scale(options.scale())
                              .margin(options.margin())
                              .exact_gradient(options.exact_gradient()),
                          options));
}

}  // namespace angular::functional
