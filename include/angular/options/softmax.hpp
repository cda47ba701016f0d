#pragma once
// Options of the modified softmax loss (paper eq. 2): cross-entropy over x Wᵀ, no bias.

#include <angular/options/cross_entropy.hpp>

namespace angular {

struct SoftmaxLossOptions {
  SoftmaxLossOptions(int64_t num_classes, int64_t embedding_dim)
      : num_classes_(num_classes), embedding_dim_(embedding_dim) {}

  TORCH_ARG(int64_t, num_classes);
  TORCH_ARG(int64_t, embedding_dim);
  ANGULAR_CROSS_ENTROPY_ARGS;
  ANGULAR_CHUNK_ARGS;
};

namespace functional {

/// Options of `functional::softmax_loss`: the cross-entropy settings alone.
struct SoftmaxLossFuncOptions {
  ANGULAR_CROSS_ENTROPY_ARGS;
  ANGULAR_CHUNK_ARGS;
};

}  // namespace functional
}  // namespace angular
