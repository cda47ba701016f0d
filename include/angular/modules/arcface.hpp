#pragma once
// ArcFaceLoss: class vectors W and ArcFace over cos(W_j, x_i).

#include <angular/detail/margin_module.hpp>
#include <angular/functional/arcface.hpp>

#include <torch/nn/pimpl.h>

namespace angular {

class ArcFaceLossImpl : public detail::MarginModule<ArcFaceLossImpl, ArcFaceLossOptions> {
 public:
  using MarginModule::MarginModule;
};

TORCH_MODULE(ArcFaceLoss);

}  // namespace angular
