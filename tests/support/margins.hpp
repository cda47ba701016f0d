#pragma once
// The margins over cosines, called through their public functional API, and their composite
// float64 reference (the oracle of the fused kernels).

#include "common.hpp"

namespace testing {

/// A margin with its hyper-parameters and, for the margins that have them, its per-row inputs:
/// feature norms (SphereFace, AdaFace) drawn in [norm_lo, norm_hi] from `seed` for each batch
/// size, AdaFace's running statistics, CurricularFace's t.
struct Margin {
  std::string name;
  angular::detail::MarginKind kind;
  angular::detail::MarginParams params;
  double logit_size = 1;  // the size of the logits, for the comparison's rounding allowance
  double norm_lo = 1, norm_hi = 1;
  uint64_t seed = 0;
  double norm_mean = 20, norm_std = 100, h = 0.333;  // AdaFace
  double t = 0;                                      // CurricularFace

  /// The feature norms of a batch of `rows`, float64.
  at::Tensor norms(int64_t rows) const { return uniform({rows}, norm_lo, norm_hi, seed); }

  /// The per-row parameters the kernels see, float64 [rows, P] (undefined where P = 0).
  at::Tensor row_params(int64_t rows) const {
    namespace D = angular::detail;
    switch (kind) {
      case D::MarginKind::sphereface: return norms(rows).unsqueeze(1);
      case D::MarginKind::adaface:
        return D::adaface_margins(norms(rows), at::scalar_tensor(norm_mean, at::kDouble),
                                  at::scalar_tensor(norm_std, at::kDouble), params.margin, h);
      case D::MarginKind::curricularface: return at::full({rows, 1}, t, at::kDouble);
      default: return at::Tensor();
    }
  }

  /// The library's loss (fused where kernel_path says so).
  at::Tensor loss(const at::Tensor& cos, const at::Tensor& y, const CrossEntropyCase& c) const {
    namespace F = angular::functional;
    namespace D = angular::detail;
    const auto on_cos = [&](const at::Tensor& t) { return t.to(cos.device()); };
    const at::Tensor stat_mean = on_cos(at::full({1}, norm_mean)), stat_std = on_cos(at::full({1}, norm_std));
    switch (kind) {
      case D::MarginKind::arc: return F::arc_loss(cos, y, c.apply(F::ArcLossFuncOptions().k(params.k)));
      case D::MarginKind::arcface:
        if (params.sub_centers > 1)
          return F::subcenter_arcface_loss(cos, y,
                                           c.apply(F::SubCenterArcFaceLossFuncOptions()
                                                       .sub_centers(params.sub_centers)
                                                       .scale(params.scale)
                                                       .margin(params.margin)));
        return F::arcface_loss(cos, y,
                               c.apply(F::ArcFaceLossFuncOptions()
                                           .scale(params.scale)
                                           .margin(params.margin)
                                           .exact_gradient(params.exact_gradient)
                                           .continuation(params.continuation)));
      case D::MarginKind::cosface:
        return F::cosface_loss(
            cos, y, c.apply(F::CosFaceLossFuncOptions().scale(params.scale).margin(params.cosine_margin)));
      case D::MarginKind::normface:
        return F::normface_loss(cos, y, c.apply(F::NormFaceLossFuncOptions().scale(params.scale)));
      case D::MarginKind::combined:
        return F::combined_margin_loss(cos, y,
                                       c.apply(F::CombinedMarginLossFuncOptions()
                                                   .scale(params.scale)
                                                   .m1(params.angle_factor)
                                                   .m2(params.margin)
                                                   .m3(params.cosine_margin)));
      case D::MarginKind::sphereface:
        return F::sphereface_loss(
            cos, on_cos(norms(cos.size(0))), y,
            c.apply(F::SphereFaceLossFuncOptions().margin(params.angle_factor).lambda(params.lambda)));
      case D::MarginKind::adaface:
        return F::adaface_loss(cos, on_cos(norms(cos.size(0))), y, stat_mean, stat_std,
                               c.apply(F::AdaFaceLossFuncOptions().scale(params.scale).margin(params.margin).h(h)));
      case D::MarginKind::curricularface:
        return F::curricularface_loss(
            cos, y, on_cos(at::full({1}, t)),
            c.apply(F::CurricularFaceLossFuncOptions().scale(params.scale).margin(params.margin)));
    }
    FAIL("unknown MarginKind");
    return {};
  }

  /// |∂z_ij/∂c_ij| of the reference logits (each logit depends on its own cosine only).
  at::Tensor logit_slope(const at::Tensor& cos, const at::Tensor& y, int64_t ignore_index) const {
    const at::Tensor c64 = cos.detach().to(at::kDouble).requires_grad_(true);
    angular::detail::margin_logits(c64, y, kind, params, row_params(cos.size(0)), ignore_index).sum().backward();
    return c64.grad().abs();
  }

  /// The composite ATen math in float64 on the same cosines.
  at::Tensor reference(const at::Tensor& cos, const at::Tensor& y, const CrossEntropyCase& c) const {
    const at::Tensor c64 = cos.to(at::kDouble);
    const auto spec = angular::detail::cross_entropy_spec(c.apply(angular::functional::ArcLossFuncOptions()));
    return angular::detail::cross_entropy(
        angular::detail::margin_logits(c64, y, kind, params, row_params(cos.size(0)), spec.ignore_index), y, spec);
  }
};

/// Margin parameters from their common fields: the scale and the additive angular margin.
inline angular::detail::MarginParams margin_params(double scale, double margin) {
  angular::detail::MarginParams p;
  p.scale = scale;
  p.margin = margin;
  return p;
}

/// Arc's k.
inline angular::detail::MarginParams arc_params(double k) {
  angular::detail::MarginParams p;
  p.k = k;
  return p;
}

/// CosFace's scale and additive cosine margin.
inline angular::detail::MarginParams cosface_params(double scale, double margin) {
  angular::detail::MarginParams p;
  p.scale = scale;
  p.cosine_margin = margin;
  return p;
}

/// SphereFace's integer m and λ.
inline angular::detail::MarginParams sphereface_params(double m, double lambda) {
  angular::detail::MarginParams p;
  p.angle_factor = m;
  p.lambda = lambda;
  return p;
}

inline std::vector<Margin> margins() {
  using angular::detail::MarginKind;
  auto combined = margin_params(32.0, 0.3);
  combined.angle_factor = 1.35;
  combined.cosine_margin = 0.2;
  const auto sphereface = sphereface_params(4, 0.5);
  auto straight_through = margin_params(64.0, 0.5);
  straight_through.exact_gradient = false;
  auto uncontinued = margin_params(64.0, 0.5);  // cos(θ + m) past θ + m > π too
  uncontinued.continuation = false;
  auto insightface = straight_through;  // arcface_torch's ArcFace: straight through, uncontinued
  insightface.continuation = false;
  std::vector<Margin> out = {{"arc", MarginKind::arc, arc_params(4.0), 1},
                             {"arcface", MarginKind::arcface, margin_params(64.0, 0.5), 64},
                             {"arcface-straight-through", MarginKind::arcface, straight_through, 64},
                             {"arcface-uncontinued", MarginKind::arcface, uncontinued, 64},
                             {"arcface-insightface", MarginKind::arcface, insightface, 64},
                             {"cosface", MarginKind::cosface, cosface_params(30.0, 0.35), 30},
                             {"normface", MarginKind::normface, margin_params(16.0, 0.0), 16},
                             {"combined", MarginKind::combined, combined, 32},
                             {"sphereface", MarginKind::sphereface, sphereface, 5 * 7, 0.5, 5, 11},
                             {"adaface", MarginKind::adaface, margin_params(64.0, 0.4), 64, 10, 40, 12, 22, 6},
                             {"curricularface", MarginKind::curricularface, margin_params(64.0, 0.5), 128}};
  out.back().t = 0.4;
  return out;
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
  const double logit_scale = std::max(1.0, margin.logit_size);
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
