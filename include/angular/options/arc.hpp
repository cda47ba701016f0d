#pragma once
// Options of the paper's angular loss (eq. 7): logits k·(π/2 − θ_j), θ_j = arccos cos_j.

#include <angular/constants.hpp>
#include <angular/options/cross_entropy.hpp>

#include <algorithm>
#include <cmath>
#include <optional>

namespace angular {

/// Default k for C classes: max(3, (2/π)·ln(99·(C − 1))). With a sample on its class
/// direction and the other C − 1 classes orthogonal, its class gets probability 0.99; the
/// paper asks for e^{kπ/2} to dominate the other classes and for k > 3. C = 10 gives 4.32.
inline double default_arc_k(int64_t num_classes) {
  if (num_classes <= 1) return 3.0;
  return std::max(3.0, 2.0 / kPi * std::log(99.0 * static_cast<double>(num_classes - 1)));
}

#define ANGULAR_ARC_K_DOC "the constant k > 0 of the logits k·(π/2 − θ); unset: max(3, (2/π)·ln(99·(C − 1))) for C classes"
#define ANGULAR_ARC_SETTINGS(X) X(std::optional<double>, k, std::nullopt, ANGULAR_ARC_K_DOC)
#define ANGULAR_ARC_MODULE_SETTINGS(X) X(double, k, default_arc_k(num_classes_), ANGULAR_ARC_K_DOC)

namespace functional {

/// Options of `functional::arc_loss` and `linear_arc_loss`.
struct ArcLossFuncOptions {
  ANGULAR_FUNC_OPTIONS(ANGULAR_ARC_SETTINGS);
};

}  // namespace functional

/// Options of `ArcLoss`.
struct ArcLossOptions {
  ANGULAR_MODULE_OPTIONS(ArcLossOptions, functional::ArcLossFuncOptions, ANGULAR_ARC_MODULE_SETTINGS);
};

}  // namespace angular
