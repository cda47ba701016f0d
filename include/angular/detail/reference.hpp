#pragma once
// The composite ATen math of the losses (the README's "The losses"). It is the oracle of the
// fused kernels and the path taken wherever no fused kernel exists, so it stays plain: one ATen
// op per formula.

#include <angular/detail/checks.hpp>
#include <angular/detail/constants.hpp>

#include <ATen/ATen.h>

namespace angular::detail {

inline at::Tensor l2_normalize_rows(const at::Tensor& x) {
  return x / x.norm(2, /*dim=*/1, /*keepdim=*/true).clamp_min(kNormEps);
}

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

/// arccos of cosines clamped to [−1 + eps, 1 − eps]: the losses take eps = kAcosEps (finite
/// gradients everywhere), the angle metrics eps = 0 (the exact angle of unit vectors).
inline at::Tensor clamped_angle(const at::Tensor& cos, double eps = kAcosEps) {
  return at::acos(at::clamp(cos, -1 + eps, 1 - eps));
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

/// ArcFace: s·c off target; s·cos(θ + m) on the target while θ + m ≤ π, else s·(c − m sin m).
inline at::Tensor arcface_logits(const at::Tensor& cos, const at::Tensor& target, double scale,
                                 double margin, int64_t ignore_index) {
  return replace_target_column(cos, target, ignore_index, [&](const at::Tensor& c) {
           const at::Tensor theta = clamped_angle(c);
           return at::where(theta + margin <= kPi, at::cos(theta + margin),
                            c - margin * std::sin(margin));
         }) * scale;
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
  const at::Tensor half_sq = 0.5 * (features - centers.index_select(0, labels)).pow(2).sum(1) * kept;
  if (reduction == at::Reduction::None) return half_sq;
  if (reduction == at::Reduction::Sum) return half_sq.sum();
  return half_sq.sum() / kept.sum();
}

}  // namespace angular::detail
