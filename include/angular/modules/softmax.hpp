#pragma once
// SoftmaxLoss: the modified softmax loss, a bias-free linear classifier with cross-entropy.

#include <angular/detail/margin_module.hpp>
#include <angular/functional/softmax.hpp>

#include <torch/nn/pimpl.h>

namespace angular {

class SoftmaxLossImpl : public detail::MarginModule<SoftmaxLossImpl, SoftmaxLossOptions> {
 public:
  using MarginModule::MarginModule;
};

TORCH_MODULE(SoftmaxLoss);

}  // namespace angular
