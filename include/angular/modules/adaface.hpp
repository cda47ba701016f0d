#pragma once
// AdaFaceLoss: class vectors W, the running statistics of the feature norms (buffers
// norm_mean and norm_std, moved in training mode like BatchNorm's) and AdaFace over cos(W_j, x_i).

#include <angular/detail/margin_module.hpp>
#include <angular/functional/adaface.hpp>

#include <torch/nn/pimpl.h>

namespace angular {

class AdaFaceLossImpl : public detail::MarginModule<AdaFaceLossImpl, AdaFaceLossOptions> {
 public:
  using MarginModule::MarginModule;
};

TORCH_MODULE(AdaFaceLoss);

}  // namespace angular
