#pragma once
// Options of ArcFace (paper eq. 4, Deng et al. 2019): logits s·cos θ_j, and for the target
// s·cos(θ + m), continued as s·(cos θ − m·sin m) once θ + m > π.

#include <angular/options/cross_entropy.hpp>

namespace angular {

struct ArcFaceLossOptions {
  ArcFaceLossOptions(int64_t num_classes, int64_t embedding_dim)
      : num_classes_(num_classes), embedding_dim_(embedding_dim) {}

  TORCH_ARG(int64_t, num_classes);
  TORCH_ARG(int64_t, embedding_dim);
  /// Scale s > 0 (ArcFace paper: 64).
  TORCH_ARG(double, scale) = 64.0;
  /// Additive angular margin m in radians, in [0, π) (ArcFace paper: 0.5).
  TORCH_ARG(double, margin) = 0.5;
  /// true: the exact derivative of the label's logit; false: the slope of s·cos θ there, the
  /// straight-through gradient of insightface's arcface_torch (margin added under no_grad).
  TORCH_ARG(bool, exact_gradient) = true;
  ANGULAR_CROSS_ENTROPY_ARGS;
  ANGULAR_CHUNK_ARGS;
};

namespace functional {

/// Options of `functional::arcface_loss`.
struct ArcFaceLossFuncOptions {
  TORCH_ARG(double, scale) = 64.0;
  TORCH_ARG(double, margin) = 0.5;
  TORCH_ARG(bool, exact_gradient) = true;
  ANGULAR_CROSS_ENTROPY_ARGS;
  ANGULAR_CHUNK_ARGS;
};

}  // namespace functional
}  // namespace angular
