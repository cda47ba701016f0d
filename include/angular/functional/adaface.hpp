#pragma once
// AdaFace over cosines and feature norms: the label's logit s·(cos(θ + g_angle) − g_add), its
// margins from each norm's standing among the running batch statistics (μ, σ).

#include <angular/detail/margin_loss.hpp>
#include <angular/options/adaface.hpp>

namespace angular::functional {

/// AdaFace loss of cosines `cos` [B, C], the features' norms `norms` [B] (no gradient flows
/// to them), labels [B] (int64) and the running statistics `norm_mean`, `norm_std` (one
/// element each; AdaFaceLoss keeps and moves them, this function reads them).
inline at::Tensor adaface_loss(const at::Tensor& cos, const at::Tensor& norms, const at::Tensor& target,
                               const at::Tensor& norm_mean, const at::Tensor& norm_std,
                               const AdaFaceLossFuncOptions& options = {}) {
  detail::MarginInputs in;
  in.norms = norms;
  in.norm_mean = norm_mean;
  in.norm_std = norm_std;
  return detail::cosine_margin_loss(cos, target, options, in);
}

/// AdaFace loss of features [B, D] and class vectors `weight` [C, D] (one dtype and device),
/// the norms taken from the features, without building the [B, C] cosines.
inline at::Tensor linear_adaface_loss(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& target,
                                      const at::Tensor& norm_mean, const at::Tensor& norm_std,
                                      const AdaFaceLossFuncOptions& options = {}) {
  detail::MarginInputs in;
  in.norm_mean = norm_mean;
  in.norm_std = norm_std;
  return detail::feature_margin_loss(features, weight, target, options, in);
}

}  // namespace angular::functional
