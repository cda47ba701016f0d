#pragma once
// Options of the combined margin of insightface (SphereFace's m1, ArcFace's m2, CosFace's m3):
// logits s·cos θ_j, and s·(cos(m1·θ + m2) − m3) for the label.

#include <angular/options/cross_entropy.hpp>

#define ANGULAR_COMBINED_SETTINGS(X)                                                      \
  X(double, scale, 64.0, "the scale s > 0 of the logits")                                  \
  X(double, m1, 1.0, "the multiplicative angular margin m1 > 0 (1: none)")                 \
  X(double, m2, 0.5, "the additive angular margin m2 in [0, π) radians (ArcFace's m)")     \
  X(double, m3, 0.0, "the additive cosine margin m3 ≥ 0 (CosFace's m)")

namespace angular {
namespace functional {

/// Options of `functional::combined_margin_loss` and `linear_combined_margin_loss`.
struct CombinedMarginLossFuncOptions {
  ANGULAR_FUNC_OPTIONS(ANGULAR_COMBINED_SETTINGS);
};

}  // namespace functional

/// Options of `CombinedMarginLoss`.
struct CombinedMarginLossOptions {
  ANGULAR_MODULE_OPTIONS(CombinedMarginLossOptions, functional::CombinedMarginLossFuncOptions,
                         ANGULAR_COMBINED_SETTINGS);
};

}  // namespace angular
