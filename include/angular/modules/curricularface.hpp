#pragma once
// CurricularFaceLoss: class vectors W, the curriculum weight t (buffer, the running mean of
// the label cosines, moved in training mode) and CurricularFace over cos(W_j, x_i).

#include <angular/detail/margin_module.hpp>
#include <angular/functional/curricularface.hpp>

#include <torch/nn/pimpl.h>

namespace angular {

class CurricularFaceLossImpl : public detail::MarginModule<CurricularFaceLossImpl, CurricularFaceLossOptions> {
 public:
  using MarginModule::MarginModule;
};

TORCH_MODULE(CurricularFaceLoss);

}  // namespace angular
