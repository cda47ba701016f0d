#pragma once
// NormFaceLoss: class vectors W and NormFace, s·cos(W_j, x_i) without margin.

#include <angular/detail/margin_module.hpp>
#include <angular/functional/normface.hpp>

#include <torch/nn/pimpl.h>

namespace angular {

class NormFaceLossImpl : public detail::MarginModule<NormFaceLossImpl, NormFaceLossOptions> {
 public:
  using MarginModule::MarginModule;
};

TORCH_MODULE(NormFaceLoss);

}  // namespace angular
