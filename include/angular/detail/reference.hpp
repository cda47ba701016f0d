#pragma once
// The composite ATen math of the losses (the README's "The losses"). It is the oracle of the
// fused kernels and the path taken wherever no fused kernel exists, so it stays plain: one ATen
// op per formula.

#include <angular/detail/checks.hpp>
#include <angular/detail/constants.hpp>
#include <angular/detail/torch_version.hpp>

#include <ATen/ATen.h>

#include <cmath>

namespace angular::detail {

/// max(‖x_i‖, kNormEps) per row ([B]): the divisor of F::normalize.
inline at::Tensor feature_norms(const at::Tensor& x) { return x.norm(2, /*dim=*/1).clamp_min(kNormEps); }

inline at::Tensor l2_normalize_rows(const at::Tensor& x) { return x / feature_norms(x).unsqueeze(1); }

/// x Wᵀ [B, C] in float32 (float64 if either is double).
inline at::Tensor linear_logits(const at::Tensor& features, const at::Tensor& weight) {
  const auto dtype = compute_dtype(features, weight);
  return at::matmul(features.to(dtype), weight.to(dtype).t());
}

/// c_ij = ŵ_j · x̂_i, [B, C].
inline at::Tensor cosine_matrix(const at::Tensor& features, const at::Tensor& weight) {
  return at::matmul(l2_normalize_rows(features), l2_normalize_rows(weight).t());
}

/// Labels that can index a [C] or [C, D] tensor: ignore_index replaced by class 0, with
/// `kept` marking the samples that are not ignored.
struct IndexableTarget {
  at::Tensor labels, kept;
};

inline IndexableTarget indexable_target(const at::Tensor& target, int64_t ignore_index) {
  const at::Tensor kept = target != ignore_index;
  return {target.masked_fill(kept.logical_not(), 0), kept};
}

/// x clamped to [lo, hi], its gradient passing only where lo < x < hi: at::clamp's from
/// LibTorch 2.15 on; before, at::clamp's also passed at lo and hi.
inline at::Tensor clamp_passing_inside(const at::Tensor& x, double lo, double hi) {
#if ANGULAR_TORCH_2_15_OR_NEWER
  return at::clamp(x, lo, hi);
#else
  return at::where((x > lo).logical_and(x < hi), x, x.detach().clamp(lo, hi));
#endif
}

/// arccos of cosines clamped to [−1 + eps, 1 − eps]: the losses take eps = kAcosEps (finite
/// gradients everywhere), the angle metrics eps = 0 (the exact angle of unit vectors).
inline at::Tensor clamped_angle(const at::Tensor& cos, double eps = kAcosEps) {
  return at::acos(clamp_passing_inside(cos, -1 + eps, 1 - eps));
}

/// Arc: k (π/2 − θ).
inline at::Tensor arc_logits(const at::Tensor& cos, double k) {
  return (kPi / 2 - clamped_angle(cos)) * k;
}

/// cos with the label's column of every kept row replaced by f(c_y) (ignored rows as they are).
template <class F>
at::Tensor replace_target_column(const at::Tensor& cos, const at::Tensor& target,
                                 int64_t ignore_index, F f) {
  const auto [labels, kept] = indexable_target(target, ignore_index);
  const at::Tensor column = labels.unsqueeze(1);
  const at::Tensor c = cos.gather(1, column);
  return cos.scatter(1, column, at::where(kept.unsqueeze(1), f(c), c));
}

/// cos(θ + m) while θ + m ≤ π, else c − m sin m (without `continuation`, cos(θ + m)):
/// ArcFace's label column before the scale.
inline at::Tensor arcface_target(const at::Tensor& c, double margin, bool continuation = true) {
  const at::Tensor theta = clamped_angle(c);
  if (!continuation) return at::cos(theta + margin);
  return at::where(theta + margin <= kPi, at::cos(theta + margin), c - margin * std::sin(margin));
}

/// ArcFace: s·c off target; s·cos(θ + m) on the target while θ + m ≤ π, else s·(c − m sin m)
/// (without `continuation`, s·cos(θ + m)); with `exact_gradient` false the target's slope is
/// that of s·c (straight through).
inline at::Tensor arcface_logits(const at::Tensor& cos, const at::Tensor& target, double scale, double margin,
                                 int64_t ignore_index, bool exact_gradient = true, bool continuation = true) {
  return replace_target_column(cos, target, ignore_index, [&](const at::Tensor& c) {
           const at::Tensor value = arcface_target(c, margin, continuation);
           return exact_gradient ? value : c + (value - c).detach();
         }) * scale;
}

/// The combined margin: s·c off target; s·(cos(m1·θ + m2) − m3) on the target while
/// m1·θ + m2 ≤ π, else s·(c − m3 − (cos θ₀ + cos m2 + m2·sin m2)), θ₀ = (π − m2)/m1.
inline at::Tensor combined_logits(const at::Tensor& cos, const at::Tensor& target, double scale, double m1,
                                  double m2, double m3, int64_t ignore_index) {
  const double offset = std::cos((kPi - m2) / m1) + std::cos(m2) + m2 * std::sin(m2) + m3;
  return replace_target_column(cos, target, ignore_index, [&](const at::Tensor& c) {
           const at::Tensor angle = clamped_angle(c) * m1 + m2;
           return at::where(angle <= kPi, at::cos(angle) - m3, c - offset);
         }) * scale;
}

/// SphereFace's ψ(θ) = (−1)^k cos(mθ) − 2k, k = ⌊mθ/π⌋ (at most m − 1), θ the clamped angle.
inline at::Tensor sphereface_psi(const at::Tensor& c, int64_t m) {
  const at::Tensor theta = clamped_angle(c);
  const at::Tensor k = at::floor(theta * (static_cast<double>(m) / kPi)).clamp_max(m - 1).detach();
  const at::Tensor sign = 1 - 2 * at::remainder(k, 2);
  return sign * at::cos(theta * static_cast<double>(m)) - 2 * k;
}

/// SphereFace: ‖x_i‖·c off target, ‖x_i‖·(λc + ψ(θ))/(1 + λ) on the target; `norms` [B].
inline at::Tensor sphereface_logits(const at::Tensor& cos, const at::Tensor& target, const at::Tensor& norms,
                                    int64_t m, double lambda, int64_t ignore_index) {
  return replace_target_column(
             cos, target, ignore_index,
             [&](const at::Tensor& c) { return (lambda * c + sphereface_psi(c, m)) / (1 + lambda); }) *
         norms.unsqueeze(1);
}

/// AdaFace: s·c off target, s·(cos(clamp(θ + g_angle, eps, π − eps)) − g_add) on the target;
/// `margins` [B, 2] holds (g_angle, g_add) per row.
inline at::Tensor adaface_logits(const at::Tensor& cos, const at::Tensor& target, const at::Tensor& margins,
                                 double scale, int64_t ignore_index) {
  const at::Tensor g_angle = margins.select(1, 0).unsqueeze(1), g_add = margins.select(1, 1).unsqueeze(1);
  return replace_target_column(cos, target, ignore_index, [&](const at::Tensor& c) {
           const at::Tensor angle = clamp_passing_inside(clamped_angle(c) + g_angle, kAdaFaceEps, kPi - kAdaFaceEps);
           return at::cos(angle) - g_add;
         }) * scale;
}

/// CurricularFace: off target, c where c ≤ cos(θ_y + m) and c·(t + c) above it (hard
/// negatives); ArcFace's label column; all times s. `t` [B] (the running mean, per row).
inline at::Tensor curricularface_logits(const at::Tensor& cos, const at::Tensor& target, const at::Tensor& t,
                                        double scale, double margin, int64_t ignore_index) {
  const auto [labels, kept] = indexable_target(target, ignore_index);
  const at::Tensor threshold = at::cos(clamped_angle(cos.gather(1, labels.unsqueeze(1))) + margin).detach();
  const at::Tensor negatives = at::where(cos > threshold, cos * (t.unsqueeze(1) + cos), cos);
  return replace_target_column(negatives, target, ignore_index, [&](const at::Tensor&) {
           return arcface_target(cos.gather(1, labels.unsqueeze(1)), margin);
         }) * scale;
}

/// The class cosines of K sub-centers per class: cos [B, C·K] → [B, C], each class's max
/// (its gradient on the first max).
inline at::Tensor class_cosines(const at::Tensor& cos, int64_t sub_centers) {
  if (sub_centers == 1) return cos;
  return std::get<0>(cos.view({cos.size(0), cos.size(1) / sub_centers, sub_centers}).max(2));
}

/// CosFace: s·c off target, s·(c − m) on the target.
inline at::Tensor cosface_logits(const at::Tensor& cos, const at::Tensor& target, double scale,
                                 double margin, int64_t ignore_index) {
  return replace_target_column(cos, target, ignore_index,
                               [&](const at::Tensor& c) { return c - margin; }) * scale;
}

/// PyTorch's cross-entropy over class indices.
inline at::Tensor cross_entropy(const at::Tensor& logits, const at::Tensor& target,
                                const CrossEntropySpec& spec) {
  std::optional<at::Tensor> class_weight;
  if (spec.class_weight.defined()) class_weight = spec.class_weight.to(logits.scalar_type());
  return at::cross_entropy_loss(logits, target, class_weight, spec.reduction, spec.ignore_index,
                                spec.label_smoothing);
}

/// ½‖x_i − c_{y_i}‖² per sample (0 for ignored samples), reduced like the cross-entropy:
/// the mean is over the samples that are not ignored.
inline at::Tensor center_term(const at::Tensor& features, const at::Tensor& centers,
                              const at::Tensor& target, int64_t reduction, int64_t ignore_index) {
  const auto [labels, kept] = indexable_target(target, ignore_index);
  const at::Tensor half_sq =
      0.5 * (features - centers.index_select(0, clamp_labels(labels, centers.size(0)))).pow(2).sum(1) * kept;
  if (reduction == at::Reduction::None) return half_sq;
  if (reduction == at::Reduction::Sum) return half_sq.sum();
  return half_sq.sum() / kept.sum();
}

}  // namespace angular::detail
