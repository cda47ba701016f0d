#pragma once
// Options of AdaFace (Kim et al. 2022): a margin that adapts to each sample's feature norm,
// a proxy of image quality. With ẑ = clip(h·(‖x‖ − μ)/(σ + eps), −1, 1) (μ, σ running
// statistics of the batch norms), the label's logit is s·(cos(θ + g_angle) − g_add) with
// g_angle = −m·ẑ and g_add = m·ẑ + m.

#include <angular/options/cross_entropy.hpp>

namespace angular {

struct AdaFaceLossOptions {
  AdaFaceLossOptions(int64_t num_classes, int64_t embedding_dim)
      : num_classes_(num_classes), embedding_dim_(embedding_dim) {}

  TORCH_ARG(int64_t, num_classes);
  TORCH_ARG(int64_t, embedding_dim);
  TORCH_ARG(double, scale) = 64.0;
  /// m in [0, π/2) radians.
  TORCH_ARG(double, margin) = 0.4;
  /// The concentration h > 0 of the norm's z-score (AdaFace: 0.333).
  TORCH_ARG(double, h) = 0.333;
  /// Weight of each batch's statistics in the running ones, in (0, 1] (AdaFace: 0.01).
  TORCH_ARG(double, momentum) = 0.01;
  ANGULAR_CROSS_ENTROPY_ARGS;
  ANGULAR_CHUNK_ARGS;
};

namespace functional {

/// Options of `functional::adaface_loss`.
struct AdaFaceLossFuncOptions {
  TORCH_ARG(double, scale) = 64.0;
  TORCH_ARG(double, margin) = 0.4;
  TORCH_ARG(double, h) = 0.333;
  ANGULAR_CROSS_ENTROPY_ARGS;
  ANGULAR_CHUNK_ARGS;
};

}  // namespace functional
}  // namespace angular
