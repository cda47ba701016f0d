#pragma once
// Options of CosFace (Wang et al. 2018): logits s·cos θ_j, and s·(cos θ_y − m) for the label.

#include <angular/options/cross_entropy.hpp>

namespace angular::functional {

/// Options of `functional::cosface_loss`.
struct CosFaceLossFuncOptions {
  /// Scale s > 0 (CosFace paper: 64).
  TORCH_ARG(double, scale) = 64.0;
  /// Additive cosine margin m ≥ 0 (CosFace paper: 0.35).
  TORCH_ARG(double, margin) = 0.35;
  ANGULAR_CROSS_ENTROPY_ARGS;
  ANGULAR_CHUNK_ARGS;
};

}  // namespace angular::functional
