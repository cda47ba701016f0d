#pragma once
// CosFace over cosines: CE with s·(cos θ − m) on the target and s·cos θ elsewhere.

#include <angular/detail/checks.hpp>
#include <angular/detail/margin_cross_entropy.hpp>
#include <angular/options/cosface.hpp>

namespace angular::functional {

/// CosFace loss of cosines `cos` [B, C] and labels `target` [B] (int64).
inline at::Tensor cosface_loss(const at::Tensor& cos, const at::Tensor& target,
                               const CosFaceLossFuncOptions& options = {}) {
  const auto spec = detail::cross_entropy_spec(options);
  detail::check_cosine_loss_inputs(cos, target, spec);
  detail::check_scale(options.scale());
  detail::check_hyperparameter("margin", options.margin(), options.margin() >= 0,
                               "a finite number >= 0");
  return detail::margin_cross_entropy(cos, target, detail::MarginKind::cosface,
                                      {options.scale(), options.margin()}, spec);
}

}  // namespace angular::functional
