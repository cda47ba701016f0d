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

#define ANGULAR_CENTER_SETTINGS(X) \
  X(double, lambda, 0.003, "the weight λ ≥ 0 of the center term (our choice; Wen et al. used 0.001–0.1)")
#define ANGULAR_CENTER_MODULE_SETTINGS(X)                                                                    \
  ANGULAR_CENTER_SETTINGS(X)                                                                                 \
  X(double, alpha, 0.5, "the centers' learning rate in the alpha rule, in (0, 1] (Wen et al.: 0.5)")         \
  X(CenterUpdate, update, CenterUpdate::alpha,                                                               \
    "how the centers learn: alpha (Wen et al.'s rule, a buffer) or sgd (a Parameter)")

namespace functional {

/// Options of `functional::center_loss`.
struct CenterLossFuncOptions {
  ANGULAR_FUNC_OPTIONS(ANGULAR_CENTER_SETTINGS);
};

}  // namespace functional

/// Options of `CenterLoss`.
struct CenterLossOptions {
  ANGULAR_MODULE_OPTIONS(CenterLossOptions, functional::CenterLossFuncOptions, ANGULAR_CENTER_MODULE_SETTINGS);
};

}  // namespace angular
