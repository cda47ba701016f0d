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
      case angular::detail::MarginKind::normface:
        return F::normface_loss(cos, y, c.apply(F::NormFaceLossFuncOptions().scale(params.scale)));
    }
    FAIL("unknown MarginKind");
    return {};
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

/// Loss and gradient of the library's path for cosines on `device` against the float64
/// reference on the CPU, on the same (rounded) inputs: |got − want| ≤ atol + 1e-4·|want|,
/// atol = 1e-5·s for logits of scale s (float32 logits of size s carry rounding of s·2⁻²⁴
/// each; where the target dominates, lse − z_y cancels to that), times B for a sum.
/// Gradients are compared as gradients of the logits, i.e. divided by max(1, s, |∂z/∂c|):
/// next to ±1, ∂z/∂c reaches 4e4 and multiplies float32's rounding of p − 1 by as much, in
/// any float32 implementation; a target slope far below s (ArcFace near θ + m = π) still
/// carries rounding of size s·2⁻²⁴.
inline void check_against_reference(const Margin& margin, const at::Tensor& cos, const at::Tensor& y,
                                    const CrossEntropyCase& c, at::ScalarType dtype = at::kFloat,
                                    at::Device device = at::kCPU) {
  INFO(margin.name << " " << c.name << " B=" << cos.size(0) << " C=" << cos.size(1) << " " << dtype
                   << " on " << device);
  const at::Tensor input = cos.detach().to(device, dtype).clone().requires_grad_(true);
  CrossEntropyCase on_device = c;
  if (c.class_weight.defined()) on_device.class_weight = c.class_weight.to(device);
  const at::Tensor got = margin.loss(input, y.to(device), on_device);
  const at::Tensor reference_input = input.detach().cpu().to(at::kDouble).requires_grad_(true);
  const at::Tensor want = margin.reference(reference_input, y, c);
  CHECK(got.scalar_type() == (dtype == at::kDouble ? at::kDouble : at::kFloat));
  const double logit_scale = std::max(1.0, margin.kind == angular::detail::MarginKind::arc ? 1.0 : margin.params.scale);
  const bool summed = std::holds_alternative<torch::enumtype::kSum>(c.reduction);
  const double loss_atol = 1e-5 * logit_scale * (summed ? std::max<int64_t>(1, cos.size(0)) : 1);
  CHECK(close(got, want, 1e-4, loss_atol));
  if (cos.size(0) == 0) return;
  const at::Tensor projection = at::rand(want.sizes(), at::kDouble);
  (got * projection.to(got.options())).sum().backward();
  (want * projection).sum().backward();
  REQUIRE(input.grad().defined());
  CHECK(input.grad().scalar_type() == dtype);
  // Half-precision gradients carry their own rounding on top.
  const double rtol = dtype == at::kHalf ? 2e-3 : dtype == at::kBFloat16 ? 1e-2 : 1e-4;
  const at::Tensor scale = margin.logit_slope(reference_input, y, c.ignore_index).clamp_min(logit_scale);
  const at::Tensor got_grad = input.grad().cpu().to(at::kDouble);
  const at::Tensor got_z = got_grad / scale;
  const at::Tensor want_z = reference_input.grad() / scale;
  const at::Tensor excess = (got_z - want_z).abs() - (1e-5 + rtol * want_z.abs());
  const int64_t worst = excess.argmax().item<int64_t>();
  const int64_t columns = std::max<int64_t>(1, cos.size(1));
  INFO("worst gradient excess " << excess.max().item<double>() << " at row " << worst / columns << " column "
                                << worst % columns << " (label " << y[worst / columns].item<int64_t>() << ")"
                                << ": got " << got_grad.reshape(-1)[worst].item<double>()
                                << ", want " << reference_input.grad().reshape(-1)[worst].item<double>()
                                << ", cos " << reference_input.reshape(-1)[worst].item<double>());
  CHECK((excess <= 0).all().item<bool>());
}

}  // namespace testing
