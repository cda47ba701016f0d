#pragma once
// Options of the center loss (paper eqs. 5-6, Wen et al. 2016):
//   L = CE(x Wᵀ, y) + lambda * mean_i ½‖x_i − c_{y_i}‖²

#include <angular/options/cross_entropy.hpp>

namespace angular {

/// How the class centers learn.
enum class CenterUpdate {
  /// Wen et al.'s rule, once per training step in forward():
  /// c_j ← c_j − alpha · Σ_{i: y_i = j} (c_j − x_i) / (1 + n_j). Centers are a buffer.
  alpha,
  /// Centers are a Parameter that the optimizer trains with the center term's gradient.
  sgd,
};

struct CenterLossOptions {
  CenterLossOptions(int64_t num_classes, int64_t embedding_dim)
      : num_classes_(num_classes), embedding_dim_(embedding_dim) {}

  TORCH_ARG(int64_t, num_classes);
  TORCH_ARG(int64_t, embedding_dim);
  /// Weight of the center term. 0.003 is our choice (Wen et al. used 0.001–0.1), >= 0.
  TORCH_ARG(double, lambda) = 0.003;
  /// Center learning rate of the alpha rule, in (0, 1]. 0.5 as in Wen et al.
  TORCH_ARG(double, alpha) = 0.5;
  TORCH_ARG(CenterUpdate, update) = CenterUpdate::alpha;
  ANGULAR_CROSS_ENTROPY_ARGS;
  ANGULAR_CHUNK_ARGS;
};

namespace functional {

/// Options of `functional::center_loss`.
struct CenterLossFuncOptions {
  TORCH_ARG(double, lambda) = 0.003;
  ANGULAR_CROSS_ENTROPY_ARGS;
  ANGULAR_CHUNK_ARGS;
};

}  // namespace functional
}  // namespace angular
