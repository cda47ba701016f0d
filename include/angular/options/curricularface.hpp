#pragma once
// Options of CurricularFace (Huang et al. 2020): ArcFace's label logit; a negative whose
// cosine exceeds the label's cos(θ_y + m) becomes s·c·(t + c), t the running mean of the
// label cosines, so hard negatives weigh more as training goes on.

#include <angular/options/cross_entropy.hpp>

namespace angular {

struct CurricularFaceLossOptions {
  CurricularFaceLossOptions(int64_t num_classes, int64_t embedding_dim)
      : num_classes_(num_classes), embedding_dim_(embedding_dim) {}

  TORCH_ARG(int64_t, num_classes);
  TORCH_ARG(int64_t, embedding_dim);
  TORCH_ARG(double, scale) = 64.0;
  /// Additive angular margin m in [0, π) radians.
  TORCH_ARG(double, margin) = 0.5;
  /// Weight of each batch's mean label cosine in t, in (0, 1] (CurricularFace: 0.01).
  TORCH_ARG(double, momentum) = 0.01;
  ANGULAR_CROSS_ENTROPY_ARGS;
  ANGULAR_CHUNK_ARGS;
};

namespace functional {

/// Options of `functional::curricularface_loss`.
struct CurricularFaceLossFuncOptions {
  TORCH_ARG(double, scale) = 64.0;
  TORCH_ARG(double, margin) = 0.5;
  ANGULAR_CROSS_ENTROPY_ARGS;
  ANGULAR_CHUNK_ARGS;
};

}  // namespace functional
}  // namespace angular
