#pragma once
// Options of the paper's angular loss (eq. 7): logits k·(π/2 − θ_j), θ_j = arccos cos_j.

#include <angular/detail/constants.hpp>
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
  return std::max(3.0, 2.0 / detail::kPi * std::log(99.0 * static_cast<double>(num_classes - 1)));
}

struct ArcLossOptions {
  ArcLossOptions(int64_t num_classes, int64_t embedding_dim)
      : num_classes_(num_classes), embedding_dim_(embedding_dim), k_(default_arc_k(num_classes)) {}

  TORCH_ARG(int64_t, num_classes);
  TORCH_ARG(int64_t, embedding_dim);
  /// The constant k > 0; defaults to default_arc_k(num_classes).
  TORCH_ARG(double, k);
  ANGULAR_CROSS_ENTROPY_ARGS;
  ANGULAR_CHUNK_ARGS;
};

namespace functional {

/// Options of `functional::arc_loss`. Without k, default_arc_k of the cosines' C is used.
struct ArcLossFuncOptions {
  TORCH_ARG(std::optional<double>, k) = std::nullopt;
  ANGULAR_CROSS_ENTROPY_ARGS;
  ANGULAR_CHUNK_ARGS;
};

}  // namespace functional
}  // namespace angular
