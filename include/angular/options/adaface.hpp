#pragma once
// Options of AdaFace (Kim et al. 2022): a margin that adapts to each sample's feature norm,
// a proxy of image quality. With ẑ = clip(h·(‖x‖ − μ)/(σ + eps), −1, 1) (μ, σ running
// statistics of the batch norms), the label's logit is s·(cos(θ + g_angle) − g_add) with
// g_angle = −m·ẑ and g_add = m·ẑ + m.

#include <angular/options/cross_entropy.hpp>

#define ANGULAR_ADAFACE_SETTINGS(X)                                        \
  X(double, scale, 64.0, "the scale s > 0 of the logits")                   \
  X(double, margin, 0.4, "the margin m in [0, π/2) radians")                \
  X(double, h, 0.333, "the concentration h > 0 of the norm's z-score (AdaFace: 0.333)")
#define ANGULAR_ADAFACE_MODULE_SETTINGS(X) \
  ANGULAR_ADAFACE_SETTINGS(X)              \
  X(double, momentum, 0.01, "the weight of each batch's statistics in the running ones, in (0, 1] (AdaFace: 0.01)")

namespace angular {
namespace functional {

/// Options of `functional::adaface_loss` and `linear_adaface_loss`.
struct AdaFaceLossFuncOptions {
  ANGULAR_FUNC_OPTIONS(ANGULAR_ADAFACE_SETTINGS);
};

}  // namespace functional

/// Options of `AdaFaceLoss`.
struct AdaFaceLossOptions {
  ANGULAR_MODULE_OPTIONS(AdaFaceLossOptions, functional::AdaFaceLossFuncOptions, ANGULAR_ADAFACE_MODULE_SETTINGS);
};

}  // namespace angular
