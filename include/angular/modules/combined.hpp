#pragma once
// CombinedMarginLoss: class vectors W and the combined margin over cos(W_j, x_i).

#include <angular/detail/margin_module.hpp>
#include <angular/functional/combined.hpp>

#include <torch/nn/pimpl.h>

namespace angular {

class CombinedMarginLossImpl : public detail::MarginModule<CombinedMarginLossImpl, CombinedMarginLossOptions> {
 public:
  using MarginModule::MarginModule;
};

TORCH_MODULE(CombinedMarginLoss);

}  // namespace angular
