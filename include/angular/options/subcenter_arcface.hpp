#pragma once
// Options of sub-center ArcFace (Deng et al. 2020): K class vectors per class, the class's
// cosine the largest of its K, then ArcFace.

#include <angular/options/cross_entropy.hpp>

#define ANGULAR_SUBCENTER_ARCFACE_SETTINGS(X)                         \
  X(int64_t, sub_centers, 3, "the sub-centers K ≥ 1 per class (the paper: 3)") \
  X(double, scale, 64.0, "the scale s > 0 of the logits")              \
  X(double, margin, 0.5, "the additive angular margin m in [0, π) radians")

namespace angular {
namespace functional {

/// Options of `functional::subcenter_arcface_loss` and `linear_subcenter_arcface_loss`.
struct SubCenterArcFaceLossFuncOptions {
  ANGULAR_FUNC_OPTIONS(ANGULAR_SUBCENTER_ARCFACE_SETTINGS);
};

}  // namespace functional

/// Options of `SubCenterArcFaceLoss`.
struct SubCenterArcFaceLossOptions {
  ANGULAR_MODULE_OPTIONS(SubCenterArcFaceLossOptions, functional::SubCenterArcFaceLossFuncOptions,
                         ANGULAR_SUBCENTER_ARCFACE_SETTINGS);

 public:
  SubCenterArcFaceLossOptions(int64_t num_classes, int64_t embedding_dim, int64_t sub_centers)
      : SubCenterArcFaceLossOptions(num_classes, embedding_dim) {
    sub_centers_ = sub_centers;
  }
};

}  // namespace angular
