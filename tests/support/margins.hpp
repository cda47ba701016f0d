#pragma once
// The four margins over cosines, called through their public functional API, and their
// composite float64 reference (the oracle of the fused kernels).

#include "common.hpp"

namespace testing {

struct Margin {
  std::string name;
  angular::detail::MarginKind kind;
  angular::detail::MarginParams params;

  /// The library's loss (fused where kernel_path says so).
  at::Tensor loss(const at::Tensor& cos, const at::Tensor& y, const CrossEntropyCase& c) const {
    namespace F = angular::functional;
    switch (kind) {
      case angular::detail::MarginKind::arc:
        return F::arc_loss(cos, y, c.apply(F::ArcLossFuncOptions().k(params.scale)));
      case angular::detail::MarginKind::arcface:
        return F::arcface_loss(
            cos, y, c.apply(F::ArcFaceLossFuncOptions().scale(params.scale).margin(params.margin)));
      case angular::detail::MarginKind::cosface:
        return F::cosface_loss(
            cos, y, c.apply(F::CosFaceLossFuncOptions().scale(params.scale).margin(params.margin)));
      default:
        return F::normface_loss(cos, y, c.apply(F::NormFaceLossFuncOptions().scale(params.scale)));
    }
  }

  /// |∂z_ij/∂c_ij| of the reference logits (each logit depends on its own cosine only).
  at::Tensor logit_slope(const at::Tensor& cos, const at::Tensor& y, int64_t ignore_index) const {
    const at::Tensor c64 = cos.detach().to(at::kDouble).requires_grad_(true);
    angular::detail::margin_logits(c64, y, kind, params, ignore_index).sum().backward();
    return c64.grad().abs();
  }

  /// The composite ATen math in float64 on the same cosines.
  at::Tensor reference(const at::Tensor& cos, const at::Tensor& y, const CrossEntropyCase& c) const {
    const at::Tensor c64 = cos.to(at::kDouble);
    const auto spec = angular::detail::cross_entropy_spec(c.apply(angular::functional::ArcLossFuncOptions()));
    return angular::detail::cross_entropy(
        angular::detail::margin_logits(c64, y, kind, params, spec.ignore_index), y, spec);
  }
};

inline std::vector<Margin> margins() {
  using angular::detail::MarginKind;
  return {{"arc", MarginKind::arc, {4.0, 0.0}},
          {"arcface", MarginKind::arcface, {64.0, 0.5}},
          {"cosface", MarginKind::cosface, {30.0, 0.35}},
          {"normface", MarginKind::normface, {16.0, 0.0}}};
}

}  // namespace testing
