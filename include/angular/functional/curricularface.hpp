#pragma once
// CurricularFace over cosines: ArcFace's label logit; negatives above the label's
// cos(θ_y + m) weighted by c·(t + c), t the running mean of the label cosines.

#include <angular/detail/margin_loss.hpp>
#include <angular/options/curricularface.hpp>

namespace angular::functional {

/// CurricularFace loss of cosines `cos` [B, C], labels [B] (int64) and the curriculum weight
/// `t` (one element; CurricularFaceLoss keeps and moves it, this function reads it).
inline at::Tensor curricularface_loss(const at::Tensor& cos, const at::Tensor& target, const at::Tensor& t,
                                      const CurricularFaceLossFuncOptions& options = {}) {
  detail::MarginInputs in;
  in.t = t;
  return detail::cosine_margin_loss(cos, target, options, in);
}

/// CurricularFace loss of features [B, D] and class vectors `weight` [C, D] (one dtype and
/// device), without building the [B, C] cosines.
inline at::Tensor linear_curricularface_loss(const at::Tensor& features, const at::Tensor& weight,
                                             const at::Tensor& target, const at::Tensor& t,
                                             const CurricularFaceLossFuncOptions& options = {}) {
  detail::MarginInputs in;
  in.t = t;
  return detail::feature_margin_loss(features, weight, target, options, in);
}

}  // namespace angular::functional
