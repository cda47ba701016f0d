#pragma once
// Options of CurricularFace (Huang et al. 2020): ArcFace's label logit; a negative whose
// cosine exceeds the label's cos(θ_y + m) becomes s·c·(t + c), t the running mean of the
// label cosines, so hard negatives weigh more as training goes on.

#include <angular/options/cross_entropy.hpp>

#define ANGULAR_CURRICULARFACE_SETTINGS(X)             \
  X(double, scale, 64.0, "the scale s > 0 of the logits") \
  X(double, margin, 0.5, "the additive angular margin m in [0, π) radians")
#define ANGULAR_CURRICULARFACE_MODULE_SETTINGS(X) \
  ANGULAR_CURRICULARFACE_SETTINGS(X)              \
  X(double, momentum, 0.01, "the weight of each batch's mean label cosine in t, in (0, 1] (CurricularFace: 0.01)")

namespace angular {
namespace functional {

/// Options of `functional::curricularface_loss` and `linear_curricularface_loss`.
struct CurricularFaceLossFuncOptions {
  ANGULAR_FUNC_OPTIONS(ANGULAR_CURRICULARFACE_SETTINGS);
};

}  // namespace functional

/// Options of `CurricularFaceLoss`.
struct CurricularFaceLossOptions {
  ANGULAR_MODULE_OPTIONS(CurricularFaceLossOptions, functional::CurricularFaceLossFuncOptions,
                         ANGULAR_CURRICULARFACE_MODULE_SETTINGS);
};

}  // namespace angular
