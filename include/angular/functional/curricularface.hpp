#pragma once
// CurricularFace over cosines: ArcFace's label logit; negatives above the label's
// cos(θ_y + m) weighted by c·(t + c), t the running mean of the label cosines.

#include <angular/detail/checks.hpp>
#include <angular/detail/linear_margin_cross_entropy.hpp>
#include <angular/detail/margin_cross_entropy.hpp>
#include <angular/options/curricularface.hpp>

#include <ATen/core/grad_mode.h>

namespace angular::detail {

template <class Options>
MarginParams curricularface_params(const Options& options) {
  check_arcface_scale_margin(options.scale(), options.margin());
  return {options.scale(), options.margin()};
}

/// t as the kernels' per-row parameter, [B, 1].
inline at::Tensor curriculum_rows(const at::Tensor& t, int64_t rows) {
  return t.detach().reshape({1, 1}).expand({rows, 1});
}

/// t ← momentum·mean(label cosines of the rows `kept`) + (1 − momentum)·t, the cosines
/// clamped to [−1, 1]; no kept row leaves t as it is. On the device: nothing waits for it.
inline void update_curriculum_(at::Tensor& t, const at::Tensor& label_cosines, const at::Tensor& kept,
                               double momentum) {
  at::NoGradGuard no_grad;
  const at::Tensor w = kept.to(t.scalar_type());
  const at::Tensor count = w.sum();
  const at::Tensor mean = (label_cosines.detach().to(t.scalar_type()).clamp(-1, 1) * w).sum() / count.clamp_min(1);
  t.copy_(at::where(count > 0, momentum * mean + (1 - momentum) * t.reshape({}), t.reshape({})).view_as(t));
}

}  // namespace angular::detail

namespace angular::functional {

/// CurricularFace loss of cosines `cos` [B, C], labels [B] (int64) and the curriculum weight
/// `t` (one element; CurricularFaceLoss keeps and moves it, this function reads it).
inline at::Tensor curricularface_loss(const at::Tensor& cos, const at::Tensor& target, const at::Tensor& t,
                                      const CurricularFaceLossFuncOptions& options = {}) {
  const auto spec = detail::cross_entropy_spec(options);
  detail::check_cosine_loss_inputs(cos, target, spec);
  detail::check_statistic(t, "t", cos, "cos");
  return detail::margin_cross_entropy(cos, target, detail::MarginKind::curricularface,
                                      detail::curricularface_params(options),
                                      detail::curriculum_rows(t, cos.size(0)), spec);
}

/// CurricularFace loss of features [B, D] and class vectors `weight` [C, D] (one dtype and
/// device), without building the [B, C] cosines.
inline at::Tensor linear_curricularface_loss(const at::Tensor& features, const at::Tensor& weight,
                                             const at::Tensor& target, const at::Tensor& t,
                                             const CurricularFaceLossFuncOptions& options = {}) {
  const auto spec = detail::cross_entropy_spec(options);
  detail::check_feature_loss_inputs(features, weight, target, spec, options.chunk_rows());
  detail::check_statistic(t, "t", features, "features");
  return detail::linear_margin_cross_entropy(features, weight, target, detail::MarginKind::curricularface,
                                             detail::curricularface_params(options),
                                             detail::curriculum_rows(t, features.size(0)), spec,
                                             {true, options.chunk_rows()});
}

}  // namespace angular::functional
