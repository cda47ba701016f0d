#pragma once
// SphereFaceLoss: class vectors W (their directions) and A-Softmax over ‖x_i‖ and cos(W_j, x_i);
// for the paper's annealing set options.lambda() before each step (sphereface_lambda).

#include <angular/detail/margin_module.hpp>
#include <angular/functional/sphereface.hpp>

#include <torch/nn/pimpl.h>

namespace angular {

class SphereFaceLossImpl : public detail::MarginModule<SphereFaceLossImpl, SphereFaceLossOptions> {
 public:
  using MarginModule::MarginModule;
};

TORCH_MODULE(SphereFaceLoss);

}  // namespace angular
