#pragma once
// Options of CosFace (Wang et al. 2018): logits s·cos θ_j, and s·(cos θ_y − m) for the label.

#include <angular/options/cross_entropy.hpp>

#define ANGULAR_COSFACE_SETTINGS(X)                                            \
  X(double, scale, 64.0, "the scale s > 0 of the logits (CosFace paper: 64)")   \
  X(double, margin, 0.35, "the additive cosine margin m ≥ 0 (CosFace paper: 0.35)")

namespace angular {
namespace functional {

/// Options of `functional::cosface_loss` and `linear_cosface_loss`.
struct CosFaceLossFuncOptions {
  ANGULAR_FUNC_OPTIONS(ANGULAR_COSFACE_SETTINGS);
};

}  // namespace functional

/// Options of `CosFaceLoss`.
struct CosFaceLossOptions {
  ANGULAR_MODULE_OPTIONS(CosFaceLossOptions, functional::CosFaceLossFuncOptions, ANGULAR_COSFACE_SETTINGS);
};

}  // namespace angular
