#pragma once
// ArcLoss: class vectors W and the paper's angular loss over cos(W_j, x_i).

#include <angular/detail/margin_module.hpp>
#include <angular/functional/arc.hpp>

#include <torch/nn/pimpl.h>

namespace angular {

class ArcLossImpl : public detail::MarginModule<ArcLossImpl, ArcLossOptions> {
 public:
  using MarginModule::MarginModule;
};

TORCH_MODULE(ArcLoss);

}  // namespace angular
