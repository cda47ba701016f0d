#pragma once
// Options of ArcFace (paper eq. 4, Deng et al. 2019): logits s·cos θ_j, and for the target
// s·cos(θ + m), continued as s·(cos θ − m·sin m) once θ + m > π (or not: `continuation`).

#include <angular/options/cross_entropy.hpp>

#define ANGULAR_ARCFACE_SETTINGS(X)                                                                       \
  X(double, scale, 64.0, "the scale s > 0 of the logits (ArcFace paper: 64)")                              \
  X(double, margin, 0.5, "the additive angular margin m in [0, π) radians (ArcFace paper: 0.5)")           \
  X(bool, exact_gradient, true,                                                                            \
    "true: the exact derivative of the label's logit; false: the slope s·cos θ has there, the "            \
    "straight-through gradient of insightface's arcface_torch")                                           \
  X(bool, continuation, true,                                                                              \
    "true: past θ + m > π the label's logit continues as s·(cos θ − m·sin m); false: it stays "           \
    "s·cos(θ + m), which turns back up, as insightface's arcface_torch has it")

namespace angular {
namespace functional {

/// Options of `functional::arcface_loss` and `linear_arcface_loss`.
struct ArcFaceLossFuncOptions {
  ANGULAR_FUNC_OPTIONS(ANGULAR_ARCFACE_SETTINGS);
};

}  // namespace functional

/// Options of `ArcFaceLoss`.
struct ArcFaceLossOptions {
  ANGULAR_MODULE_OPTIONS(ArcFaceLossOptions, functional::ArcFaceLossFuncOptions, ANGULAR_ARCFACE_SETTINGS);
};

}  // namespace angular
