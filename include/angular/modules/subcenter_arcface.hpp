#pragma once
// SubCenterArcFaceLoss: K sub-center vectors per class (weight [C·K, D], class c's in rows
// cK … cK + K − 1) and ArcFace over each class's nearest sub-center.

#include <angular/detail/module_base.hpp>
#include <angular/functional/subcenter_arcface.hpp>

#include <torch/nn/pimpl.h>

namespace angular {

class SubCenterArcFaceLossImpl
    : public detail::LossModuleBase<SubCenterArcFaceLossImpl, SubCenterArcFaceLossOptions> {
 public:
  SubCenterArcFaceLossImpl(int64_t num_classes, int64_t embedding_dim, int64_t sub_centers = 3)
      : SubCenterArcFaceLossImpl(SubCenterArcFaceLossOptions(num_classes, embedding_dim, sub_centers)) {}
  explicit SubCenterArcFaceLossImpl(SubCenterArcFaceLossOptions options) : LossModuleBase(std::move(options)) {
    reset();
  }

  void reset() override {
    detail::check_sub_centers(options.sub_centers());
    reset_class_vectors("SubCenterArcFaceLossOptions", options.sub_centers());
    detail::subcenter_arcface_params(options);
  }

  /// The loss of features [B, D] with labels [B] (int64); no [B, C·K] tensor.
  at::Tensor forward(const at::Tensor& features, const at::Tensor& target) {
    const auto [x, w] = features_and_weight(features);
    return functional::linear_subcenter_arcface_loss(
        x, w, target,
        with_module_cross_entropy(functional::SubCenterArcFaceLossFuncOptions()
                                      .sub_centers(options.sub_centers())
                                      .scale(options.scale())
                                      .margin(options.margin())));
  }

  /// Each class's cosine [B, C]: the largest of its sub-centers'.
  at::Tensor class_cosines(const at::Tensor& features) const {
    return detail::class_cosines(cosines(features), options.sub_centers());
  }

  /// Logits s·cos θ [B, C] of each class's nearest sub-center, for prediction (no margin).
  at::Tensor logits(const at::Tensor& features) const { return class_cosines(features) * options.scale(); }

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

  void pretty_print(std::ostream& stream) const override {
    stream << "angular::SubCenterArcFaceLoss(num_classes=" << options.num_classes()
           << ", embedding_dim=" << options.embedding_dim() << ", sub_centers=" << options.sub_centers()
           << ", scale=" << options.scale() << ", margin=" << options.margin() << ")";
  }
};

TORCH_MODULE(SubCenterArcFaceLoss);

}  // namespace angular
