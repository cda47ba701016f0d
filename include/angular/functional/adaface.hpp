#pragma once
// AdaFace over cosines and feature norms: the label's logit s·(cos(θ + g_angle) − g_add), its
// margins from each norm's standing among the running batch statistics (μ, σ).

#include <angular/detail/checks.hpp>
#include <angular/detail/linear_margin_cross_entropy.hpp>
#include <angular/detail/margin_cross_entropy.hpp>
#include <angular/options/adaface.hpp>

#include <ATen/core/grad_mode.h>

namespace angular::detail {

/// The norms as AdaFace's margins see them: clipped to [0.001, 100], without gradient.
inline at::Tensor adaface_norms(const at::Tensor& norms) { return norms.detach().clamp(1e-3, 100); }

/// (g_angle, g_add) per row, [B, 2]: ẑ = clip(h·(n − μ)/(σ + eps), −1, 1), g_angle = −m·ẑ,
/// g_add = m·ẑ + m.
inline at::Tensor adaface_margins(const at::Tensor& norms, const at::Tensor& mean, const at::Tensor& std,
                                  double margin, double h) {
  const at::Tensor n = adaface_norms(norms);
  const at::Tensor z = ((n - mean.reshape({}).to(n.scalar_type())) /
                        (std.reshape({}).to(n.scalar_type()) + kAdaFaceEps) * h).clamp(-1, 1);
  return at::stack({z * -margin, z * margin + margin}, 1);
}

/// mean ← momentum·μ_b + (1 − momentum)·mean and std likewise with σ_b, the batch's mean and
/// unbiased standard deviation of the norms of the rows `kept`; fewer than two such rows
/// leave them as they are. All on the device: nothing waits for it.
inline void update_adaface_statistics_(at::Tensor& mean, at::Tensor& std, const at::Tensor& norms,
                                       const at::Tensor& kept, double momentum) {
  at::NoGradGuard no_grad;
  const at::Tensor n = adaface_norms(norms).to(mean.scalar_type());
  const at::Tensor w = kept.to(mean.scalar_type());
  const at::Tensor count = w.sum();
  const at::Tensor batch_mean = (n * w).sum() / count.clamp_min(1);
  const at::Tensor batch_std = (((n - batch_mean).pow(2) * w).sum() / (count - 1).clamp_min(1)).sqrt();
  const at::Tensor enough = count >= 2;
  mean.copy_(
      at::where(enough, momentum * batch_mean + (1 - momentum) * mean.reshape({}), mean.reshape({})).view_as(mean));
  std.copy_(at::where(enough, momentum * batch_std + (1 - momentum) * std.reshape({}), std.reshape({})).view_as(std));
}

template <class Options>
MarginParams adaface_params(const Options& options) {
  check_adaface(options.scale(), options.margin(), options.h());
  return {options.scale(), options.margin()};
}

}  // namespace angular::detail

namespace angular::functional {

/// AdaFace loss of cosines `cos` [B, C], the features' norms `norms` [B] (no gradient flows
/// to them), labels [B] (int64) and the running statistics `norm_mean`, `norm_std` (one
/// element each; AdaFaceLoss keeps and moves them, this function reads them).
inline at::Tensor adaface_loss(const at::Tensor& cos, const at::Tensor& norms, const at::Tensor& target,
                               const at::Tensor& norm_mean, const at::Tensor& norm_std,
                               const AdaFaceLossFuncOptions& options = {}) {
  const auto spec = detail::cross_entropy_spec(options);
  detail::check_cosine_loss_inputs(cos, target, spec);
  detail::check_row_vector(norms, "norms", cos, "cos");
  detail::check_statistic(norm_mean, "norm_mean", cos, "cos");
  detail::check_statistic(norm_std, "norm_std", cos, "cos");
  const detail::MarginParams params = detail::adaface_params(options);
  return detail::margin_cross_entropy(
      cos, target, detail::MarginKind::adaface, params,
      detail::adaface_margins(norms, norm_mean, norm_std, options.margin(), options.h()), spec);
}

/// AdaFace loss of features [B, D] and class vectors `weight` [C, D] (one dtype and device),
/// the norms taken from the features, without building the [B, C] cosines.
inline at::Tensor linear_adaface_loss(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& target,
                                      const at::Tensor& norm_mean, const at::Tensor& norm_std,
                                      const AdaFaceLossFuncOptions& options = {}) {
  const auto spec = detail::cross_entropy_spec(options);
  detail::check_feature_loss_inputs(features, weight, target, spec, options.chunk_rows());
  detail::check_statistic(norm_mean, "norm_mean", features, "features");
  detail::check_statistic(norm_std, "norm_std", features, "features");
  const detail::MarginParams params = detail::adaface_params(options);
  const at::Tensor norms = at::linalg_vector_norm(features.detach(), 2, {1}, false, detail::compute_dtype(features));
  return detail::linear_margin_cross_entropy(
      features, weight, target, detail::MarginKind::adaface, params,
      detail::adaface_margins(norms, norm_mean, norm_std, options.margin(), options.h()), spec,
      {true, options.chunk_rows()});
}

}  // namespace angular::functional
