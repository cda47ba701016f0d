#pragma once
// Options of NormFace (Wang et al. 2017): softmax over s·cos θ_j, no margin.

#include <angular/options/cross_entropy.hpp>

#define ANGULAR_NORMFACE_SETTINGS(X) \
  X(double, scale, 16.0, "the scale s > 0, the temperature's inverse (16 suits tens of classes, 64 thousands)")

namespace angular {
namespace functional {

/// Options of `functional::normface_loss` and `linear_normface_loss`.
struct NormFaceLossFuncOptions {
  ANGULAR_FUNC_OPTIONS(ANGULAR_NORMFACE_SETTINGS);
};

}  // namespace functional

/// Options of `NormFaceLoss`.
struct NormFaceLossOptions {
  ANGULAR_MODULE_OPTIONS(NormFaceLossOptions, functional::NormFaceLossFuncOptions, ANGULAR_NORMFACE_SETTINGS);
};

}  // namespace angular
