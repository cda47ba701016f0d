#pragma once
// Options of sub-center ArcFace (Deng et al. 2020): K class vectors per class, the class's
// cosine the largest of its K, then ArcFace.

#include <angular/options/cross_entropy.hpp>

namespace angular {

struct SubCenterArcFaceLossOptions {
  SubCenterArcFaceLossOptions(int64_t num_classes, int64_t embedding_dim, int64_t sub_centers = 3)
      : num_classes_(num_classes), embedding_dim_(embedding_dim), sub_centers_(sub_centers) {}

  TORCH_ARG(int64_t, num_classes);
  TORCH_ARG(int64_t, embedding_dim);
  /// K >= 1 sub-centers per class (the paper: 3).
  TORCH_ARG(int64_t, sub_centers);
  TORCH_ARG(double, scale) = 64.0;
  TORCH_ARG(double, margin) = 0.5;
  ANGULAR_CROSS_ENTROPY_ARGS;
  ANGULAR_CHUNK_ARGS;
};

namespace functional {

/// Options of `functional::subcenter_arcface_loss`.
struct SubCenterArcFaceLossFuncOptions {
  TORCH_ARG(int64_t, sub_centers) = 3;
  TORCH_ARG(double, scale) = 64.0;
  TORCH_ARG(double, margin) = 0.5;
  ANGULAR_CROSS_ENTROPY_ARGS;
  ANGULAR_CHUNK_ARGS;
};

}  // namespace functional
}  // namespace angular
