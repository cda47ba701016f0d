#pragma once
// Options of NormFace (Wang et al. 2017): softmax over s·cos θ_j, no margin.

#include <angular/options/cross_entropy.hpp>

namespace angular::functional {

/// Options of `functional::normface_loss`.
struct NormFaceLossFuncOptions {
  /// Scale s > 0 (the temperature's inverse; 16 suits tens of classes, 64 thousands).
  TORCH_ARG(double, scale) = 16.0;
  ANGULAR_CROSS_ENTROPY_ARGS;
  ANGULAR_CHUNK_ARGS;
};

}  // namespace angular::functional
