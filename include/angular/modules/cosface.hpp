#pragma once
// CosFaceLoss: class vectors W and CosFace over cos(W_j, x_i).

#include <angular/detail/margin_module.hpp>
#include <angular/functional/cosface.hpp>

#include <torch/nn/pimpl.h>

namespace angular {

class CosFaceLossImpl : public detail::MarginModule<CosFaceLossImpl, CosFaceLossOptions> {
 public:
  using MarginModule::MarginModule;
};

TORCH_MODULE(CosFaceLoss);

}  // namespace angular
