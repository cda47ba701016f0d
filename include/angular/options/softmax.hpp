#pragma once
// Options of the modified softmax loss (paper eq. 2): cross-entropy over x Wᵀ, no bias; the
// cross-entropy's settings alone.

#include <angular/options/cross_entropy.hpp>

namespace angular {
namespace functional {

/// Options of `functional::softmax_loss`.
struct SoftmaxLossFuncOptions {
  ANGULAR_FUNC_OPTIONS(ANGULAR_NO_SETTINGS);
};

}  // namespace functional

/// Options of `SoftmaxLoss`.
struct SoftmaxLossOptions {
  ANGULAR_MODULE_OPTIONS(SoftmaxLossOptions, functional::SoftmaxLossFuncOptions, ANGULAR_NO_SETTINGS);
};

}  // namespace angular
