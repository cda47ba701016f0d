#pragma once
// Options of SphereFace (A-Softmax, Liu et al. 2017): logits ‖x‖·cos θ_j, and for the label
// ‖x‖·(λ·cos θ + ψ(θ))/(1 + λ) with ψ(θ) = (−1)^k cos(mθ) − 2k on θ ∈ [kπ/m, (k + 1)π/m].

#include <angular/options/cross_entropy.hpp>

#include <algorithm>
#include <cmath>

#define ANGULAR_SPHEREFACE_SETTINGS(X)                                                                  \
  X(double, margin, 4.0, "the integer angular margin m in [1, 64] (SphereFace paper: 4)")                \
  X(double, lambda, 0.0,                                                                                 \
    "the annealing weight λ ≥ 0 of the plain logit in the label's (0: pure A-Softmax); the paper starts " \
    "large and lowers it (sphereface_lambda)")

namespace angular {

/// SphereFace's annealing schedule at optimizer step `step` (from 0), as in its authors'
/// Caffe layer: max(lambda_min, base·(1 + gamma·step)^(−power)), with their defaults.
inline double sphereface_lambda(int64_t step, double base = 1000.0, double gamma = 0.12, double power = 1.0,
                                double lambda_min = 5.0) {
  return std::max(lambda_min, base * std::pow(1.0 + gamma * static_cast<double>(step), -power));
}

namespace functional {

/// Options of `functional::sphereface_loss` and `linear_sphereface_loss`.
struct SphereFaceLossFuncOptions {
  ANGULAR_FUNC_OPTIONS(ANGULAR_SPHEREFACE_SETTINGS);
};

}  // namespace functional

/// Options of `SphereFaceLoss`.
struct SphereFaceLossOptions {
  ANGULAR_MODULE_OPTIONS(SphereFaceLossOptions, functional::SphereFaceLossFuncOptions, ANGULAR_SPHEREFACE_SETTINGS);
};

}  // namespace angular
