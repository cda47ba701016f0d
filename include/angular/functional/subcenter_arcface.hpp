#pragma once
// Sub-center ArcFace over cosines [B, C·K]: each class's cosine is the largest of its K
// sub-centers' (columns cK … cK + K − 1), then ArcFace; and the dominant sub-centers and
// outlying samples by which its authors clean noisy labels.

#include <angular/detail/margin_loss.hpp>
#include <angular/options/subcenter_arcface.hpp>

namespace angular::detail {

/// Each sample's cosines to its own class's K sub-centers, [B, K].
inline at::Tensor own_sub_center_cosines(const at::Tensor& cos, const at::Tensor& target, int64_t sub_centers) {
  const int64_t rows = cos.size(0), classes = cos.size(1) / sub_centers;
  const at::Tensor index = target.view({rows, 1, 1}).expand({rows, 1, sub_centers});
  return cos.view({rows, classes, sub_centers}).gather(1, index).squeeze(1);
}

}  // namespace angular::detail

namespace angular::functional {

/// Sub-center ArcFace loss of cosines `cos` [B, C·K] (K = options.sub_centers(), class c's
/// sub-centers in columns cK … cK + K − 1) and labels [B] (int64). The max is taken inside the
/// fused kernel; its gradient goes to the first largest sub-center.
inline at::Tensor subcenter_arcface_loss(const at::Tensor& cos, const at::Tensor& target,
                                         const SubCenterArcFaceLossFuncOptions& options = {}) {
  return detail::cosine_margin_loss(cos, target, options);
}

/// Sub-center ArcFace loss of features [B, D] and sub-center vectors `weight` [C·K, D], without
/// building the [B, C·K] cosines.
inline at::Tensor linear_subcenter_arcface_loss(const at::Tensor& features, const at::Tensor& weight,
                                                const at::Tensor& target,
                                                const SubCenterArcFaceLossFuncOptions& options = {}) {
  return detail::feature_margin_loss(features, weight, target, options);
}

/// Each class's dominant sub-center [C] (int64): the one nearest to the most of the class's
/// samples among cos [B, C·K] (ties: the lowest index), or −1 for a class without samples.
inline at::Tensor dominant_sub_centers(const at::Tensor& cos, const at::Tensor& target, int64_t sub_centers) {
  detail::check_floating_matrix(cos, "cos");
  detail::check_sub_centers(sub_centers);
  TORCH_CHECK(cos.size(1) >= 1 && cos.size(1) % sub_centers == 0, "angular: cos must have sub_centers (",
              sub_centers, ") columns per class, got shape ", cos.sizes());
  const int64_t classes = cos.size(1) / sub_centers;
  detail::check_labels(target, "target", cos, "cos", classes);
  const at::Tensor nearest = detail::own_sub_center_cosines(cos, target, sub_centers).argmax(1);
  const at::Tensor counts = at::zeros({classes * sub_centers}, target.options())
                                .index_add_(0, target * sub_centers + nearest, at::ones_like(target))
                                .view({classes, sub_centers});
  return counts.argmax(1).masked_fill_(counts.sum(1) == 0, -1);
}

/// The samples [B] (bool) farther than `threshold_degrees` from their class's dominant
/// sub-center: label noise by sub-center ArcFace's rule (its authors use 75°).
inline at::Tensor sub_center_outliers(const at::Tensor& cos, const at::Tensor& target, int64_t sub_centers,
                                      double threshold_degrees = 75.0) {
  detail::check_hyperparameter("threshold_degrees", threshold_degrees,
                               threshold_degrees >= 0 && threshold_degrees <= 180, "in [0, 180]");
  const at::Tensor dominant = dominant_sub_centers(cos, target, sub_centers).index_select(0, target);
  const at::Tensor to_dominant =
      detail::own_sub_center_cosines(cos, target, sub_centers).gather(1, dominant.unsqueeze(1));
  return to_dominant.squeeze(1) < std::cos(threshold_degrees * angular::kPi / 180.0);
}

}  // namespace angular::functional
