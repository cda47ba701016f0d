#pragma once
// Options of the combined margin of insightface (SphereFace's m1, ArcFace's m2, CosFace's m3):
// logits s·cos θ_j, and s·(cos(m1·θ + m2) − m3) for the label.

#include <angular/options/cross_entropy.hpp>

namespace angular {

struct CombinedMarginLossOptions {
  CombinedMarginLossOptions(int64_t num_classes, int64_t embedding_dim)
      : num_classes_(num_classes), embedding_dim_(embedding_dim) {}

  TORCH_ARG(int64_t, num_classes);
  TORCH_ARG(int64_t, embedding_dim);
  /// Scale s > 0.
  TORCH_ARG(double, scale) = 64.0;
  /// Multiplicative angular margin m1 > 0 (1: none).
  TORCH_ARG(double, m1) = 1.0;
  /// Additive angular margin m2 in [0, π) radians (ArcFace's m).
  TORCH_ARG(double, m2) = 0.5;
  /// Additive cosine margin m3 >= 0 (CosFace's m).
  TORCH_ARG(double, m3) = 0.0;
  ANGULAR_CROSS_ENTROPY_ARGS;
  ANGULAR_CHUNK_ARGS;
};

namespace functional {

/// Options of `functional::combined_margin_loss`.
struct CombinedMarginLossFuncOptions {
  TORCH_ARG(double, scale) = 64.0;
  TORCH_ARG(double, m1) = 1.0;
  TORCH_ARG(double, m2) = 0.5;
  TORCH_ARG(double, m3) = 0.0;
  ANGULAR_CROSS_ENTROPY_ARGS;
  ANGULAR_CHUNK_ARGS;
};

}  // namespace functional
}  // namespace angular
