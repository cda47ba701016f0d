#pragma once
// SubCenterArcFaceLoss: K sub-center vectors per class (weight [C·K, D], class c's in rows
// cK … cK + K − 1) and ArcFace over each class's nearest sub-center.

#include <angular/detail/margin_module.hpp>
#include <angular/functional/subcenter_arcface.hpp>

#include <torch/nn/pimpl.h>

namespace angular {

class SubCenterArcFaceLossImpl
    : public detail::MarginModule<SubCenterArcFaceLossImpl, SubCenterArcFaceLossOptions> {
 public:
  using MarginModule::MarginModule;
  SubCenterArcFaceLossImpl(int64_t num_classes, int64_t embedding_dim, int64_t sub_centers)
      : MarginModule(SubCenterArcFaceLossOptions(num_classes, embedding_dim, sub_centers)) {}

  /// Each class's cosine [B, C]: the largest of its sub-centers'.
  at::Tensor class_cosines(const at::Tensor& features) const {
    return detail::class_cosines(cosines(features), options.sub_centers());
  }

  /// Each class's dominant sub-center [C] (int64) among these samples, −1 for a class without
  /// one (functional::dominant_sub_centers).
  at::Tensor dominant_centers(const at::Tensor& features, const at::Tensor& labels) const {
    return functional::dominant_sub_centers(cosines(features), labels, options.sub_centers());
  }

  /// The samples [B] (bool) farther than `threshold_degrees` from their class's dominant
  /// sub-center (functional::sub_center_outliers).
  at::Tensor outliers(const at::Tensor& features, const at::Tensor& labels, double threshold_degrees = 75.0) const {
    return functional::sub_center_outliers(cosines(features), labels, options.sub_centers(), threshold_degrees);
  }
};

TORCH_MODULE(SubCenterArcFaceLoss);

}  // namespace angular
