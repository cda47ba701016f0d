#pragma once
// The running statistics of the margins that keep them, and the per-row parameters the kernels
// read from them: AdaFace's feature-norm mean and standard deviation, CurricularFace's mean
// label cosine t. The updates run on the tensors' device: nothing waits for it.

#include <angular/detail/constants.hpp>
#include <angular/detail/reference.hpp>

#include <ATen/ATen.h>
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
/// leave them as they are.
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

/// t as the kernels' per-row parameter, [B, 1].
inline at::Tensor curriculum_rows(const at::Tensor& t, int64_t rows) {
  return t.detach().reshape({1, 1}).expand({rows, 1});
}

/// t ← momentum·mean(label cosines of the rows `kept`) + (1 − momentum)·t, the cosines
/// clamped to [−1, 1]; no kept row leaves t as it is.
inline void update_curriculum_(at::Tensor& t, const at::Tensor& label_cosines, const at::Tensor& kept,
                               double momentum) {
  at::NoGradGuard no_grad;
  const at::Tensor w = kept.to(t.scalar_type());
  const at::Tensor count = w.sum();
  const at::Tensor mean = (label_cosines.detach().to(t.scalar_type()).clamp(-1, 1) * w).sum() / count.clamp_min(1);
  t.copy_(at::where(count > 0, momentum * mean + (1 - momentum) * t.reshape({}), t.reshape({})).view_as(t));
}

/// The feature norms [B] that AdaFace's margins read (no gradient), in the compute dtype.
inline at::Tensor detached_norms(const at::Tensor& features) {
  return at::linalg_vector_norm(features.detach(), 2, {1}, false, compute_dtype(features));
}

}  // namespace angular::detail
