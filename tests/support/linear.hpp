#pragma once
// The features-level losses under test, each with its composite oracle (the cosine-level loss
// of detail::cosine_matrix, or the cross-entropy of x Wᵀ), and their comparison in float64.

#include "common.hpp"

#include <functional>
#include <string>
#include <vector>

namespace testing {

namespace F = angular::functional;

using LinearLoss = std::function<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                            const CrossEntropyCase&, int64_t)>;

struct LossUnderTest {
  const char* name;
  LinearLoss fused;      // the features-level function
  LinearLoss composite;  // the cosine-level loss of detail::cosine_matrix (or x Wᵀ)
};

/// The case's settings and the chunking: `chunking` rows per chunk (0: automatic), or where
/// negative −chunking classes per block of the class-blocked pass.
template <class Options>
Options with_case(Options options, const CrossEntropyCase& ce, int64_t chunking) {
  options = ce.apply(options);
  return chunking < 0 ? options.chunk_classes(-chunking) : options.chunk_rows(chunking);
}

/// A combined margin with all three parts.
inline F::CombinedMarginLossFuncOptions combined_options() {
  return F::CombinedMarginLossFuncOptions().scale(16).m1(1.35).m2(0.3).m3(0.2);
}

inline std::vector<LossUnderTest> losses() {
  namespace D = angular::detail;
  return {
      {"arc",
       [](auto& x, auto& w, auto& y, auto& ce, auto rows) {
         return F::linear_arc_loss(x, w, y, with_case(F::ArcLossFuncOptions().k(3.5), ce, rows));
       },
       [](auto& x, auto& w, auto& y, auto& ce, auto rows) {
         return F::arc_loss(D::cosine_matrix(x, w), y, with_case(F::ArcLossFuncOptions().k(3.5), ce, rows));
       }},
      {"arcface",
       [](auto& x, auto& w, auto& y, auto& ce, auto rows) {
         return F::linear_arcface_loss(x, w, y, with_case(F::ArcFaceLossFuncOptions().scale(16), ce, rows));
       },
       [](auto& x, auto& w, auto& y, auto& ce, auto rows) {
         return F::arcface_loss(D::cosine_matrix(x, w), y, with_case(F::ArcFaceLossFuncOptions().scale(16), ce, rows));
       }},
      {"cosface",
       [](auto& x, auto& w, auto& y, auto& ce, auto rows) {
         return F::linear_cosface_loss(x, w, y, with_case(F::CosFaceLossFuncOptions().scale(16), ce, rows));
       },
       [](auto& x, auto& w, auto& y, auto& ce, auto rows) {
         return F::cosface_loss(D::cosine_matrix(x, w), y, with_case(F::CosFaceLossFuncOptions().scale(16), ce, rows));
       }},
      {"normface",
       [](auto& x, auto& w, auto& y, auto& ce, auto rows) {
         return F::linear_normface_loss(x, w, y, with_case(F::NormFaceLossFuncOptions(), ce, rows));
       },
       [](auto& x, auto& w, auto& y, auto& ce, auto rows) {
         return F::normface_loss(D::cosine_matrix(x, w), y, with_case(F::NormFaceLossFuncOptions(), ce, rows));
       }},
      {"arcface-straight-through",
       [](auto& x, auto& w, auto& y, auto& ce, auto rows) {
         return F::linear_arcface_loss(
             x, w, y, with_case(F::ArcFaceLossFuncOptions().scale(16).exact_gradient(false), ce, rows));
       },
       [](auto& x, auto& w, auto& y, auto& ce, auto rows) {
         return F::arcface_loss(D::cosine_matrix(x, w), y,
                                with_case(F::ArcFaceLossFuncOptions().scale(16).exact_gradient(false), ce, rows));
       }},
      {"combined",
       [](auto& x, auto& w, auto& y, auto& ce, auto rows) {
         return F::linear_combined_margin_loss(x, w, y, with_case(combined_options(), ce, rows));
       },
       [](auto& x, auto& w, auto& y, auto& ce, auto rows) {
         return F::combined_margin_loss(D::cosine_matrix(x, w), y, with_case(combined_options(), ce, rows));
       }},
      {"sphereface",
       [](auto& x, auto& w, auto& y, auto& ce, auto rows) {
         return F::linear_sphereface_loss(x, w, y, with_case(F::SphereFaceLossFuncOptions().lambda(0.5), ce, rows));
       },
       [](auto& x, auto& w, auto& y, auto& ce, auto rows) {
         return F::sphereface_loss(D::cosine_matrix(x, w), D::feature_norms(x), y,
                                   with_case(F::SphereFaceLossFuncOptions().lambda(0.5), ce, rows));
       }},
      {"adaface",
       [](auto& x, auto& w, auto& y, auto& ce, auto rows) {
         return F::linear_adaface_loss(x, w, y, at::full({1}, 1.2, x.options()), at::full({1}, 0.5, x.options()),
                                       with_case(F::AdaFaceLossFuncOptions().scale(16), ce, rows));
       },
       [](auto& x, auto& w, auto& y, auto& ce, auto rows) {
         return F::adaface_loss(D::cosine_matrix(x, w), x.norm(2, 1), y, at::full({1}, 1.2, x.options()),
                                at::full({1}, 0.5, x.options()),
                                with_case(F::AdaFaceLossFuncOptions().scale(16), ce, rows));
       }},
      {"curricularface",
       [](auto& x, auto& w, auto& y, auto& ce, auto rows) {
         return F::linear_curricularface_loss(x, w, y, at::full({1}, 0.3, x.options()),
                                              with_case(F::CurricularFaceLossFuncOptions().scale(16), ce, rows));
       },
       [](auto& x, auto& w, auto& y, auto& ce, auto rows) {
         return F::curricularface_loss(D::cosine_matrix(x, w), y, at::full({1}, 0.3, x.options()),
                                       with_case(F::CurricularFaceLossFuncOptions().scale(16), ce, rows));
       }},
      {"softmax",
       [](auto& x, auto& w, auto& y, auto& ce, auto rows) {
         return F::softmax_loss(x, w, y, with_case(F::SoftmaxLossFuncOptions(), ce, rows));
       },
       [](auto& x, auto& w, auto& y, auto& ce, auto) {
         // + 0·z: a non-finite logit makes its row NaN (an −∞ one would otherwise vanish).
         const at::Tensor z = D::linear_logits(x, w);
         return D::cross_entropy(z + z * 0, y, D::cross_entropy_spec(ce.apply(F::SoftmaxLossFuncOptions())));
       }},
  };
}

/// Sub-center ArcFace (3 sub-centers, W [3·C, D]) over features, against its cosine-level loss.
inline LossUnderTest subcenter_arcface() {
  return {"subcenter-arcface",
          [](auto& x, auto& w, auto& y, auto& ce, auto rows) {
            return F::linear_subcenter_arcface_loss(
                x, w, y, with_case(F::SubCenterArcFaceLossFuncOptions().scale(16), ce, rows));
          },
          [](auto& x, auto& w, auto& y, auto& ce, auto rows) {
            return F::subcenter_arcface_loss(angular::detail::cosine_matrix(x, w), y,
                                             with_case(F::SubCenterArcFaceLossFuncOptions().scale(16), ce, rows));
          }};
}

struct LossAndGradients {
  at::Tensor loss, grad_features, grad_weight;
};

/// The loss and the gradients of Σ loss·R (R a fixed random projection, 1 for a scalar) with
/// respect to both inputs.
inline LossAndGradients evaluate(const LinearLoss& loss, const at::Tensor& x, const at::Tensor& w, const at::Tensor& y,
                                 const CrossEntropyCase& ce, int64_t rows) {
  const at::Tensor xg = x.detach().requires_grad_(true), wg = w.detach().requires_grad_(true);
  const at::Tensor value = loss(xg, wg, y, ce, rows);
  const at::Tensor projection =
      value.dim() == 0 ? at::ones({}, value.options()) : uniform(value.sizes(), 0.5, 1.5, 99).to(value.options());
  (value * projection).sum().backward();
  return {value.detach(), xg.grad(), wg.grad()};
}

/// The composite in float64 on float64 copies of the same inputs.
inline LossAndGradients reference(const LossUnderTest& loss, const at::Tensor& x, const at::Tensor& w,
                                  const at::Tensor& y, const CrossEntropyCase& ce) {
  const angular::CompositePathGuard composite;
  return evaluate(loss.composite, x.to(at::kDouble), w.to(at::kDouble), y, ce, 0);
}

/// max |got − want| <= atol + rtol · max |want| (a gradient's scale is its largest element).
inline bool near(const at::Tensor& got, const at::Tensor& want, double rtol, double atol) {
  if (!got.defined() || !want.defined()) return got.defined() == want.defined();
  if (got.sizes() != want.sizes()) return false;
  if (want.numel() == 0) return true;
  const at::Tensor g = got.to(at::kDouble).cpu(), r = want.to(at::kDouble).cpu();
  // NaN where the reference has NaN (a mean over no sample), nowhere else.
  if (!at::equal(at::isnan(g), at::isnan(r))) return false;
  const at::Tensor error_terms = (g - r).abs().nan_to_num(0);
  if (at::isnan(r).all().item<bool>()) return true;
  const double error = error_terms.max().item<double>();
  const bool ok = error <= atol + rtol * r.abs().nan_to_num(0).max().item<double>();
  if (!ok) UNSCOPED_INFO("max error " << error << " against max |want| " << r.abs().nan_to_num(0).max().item<double>());
  return ok;
}

/// The features-level loss on `device` against the float64 composite on the CPU.
inline void check_against_composite(const LossUnderTest& loss, const at::Tensor& x, const at::Tensor& w,
                                    const at::Tensor& y, const CrossEntropyCase& ce, int64_t rows, double rtol,
                                    double atol, at::Device device = at::kCPU) {
  CrossEntropyCase on_device = ce;
  if (ce.class_weight.defined()) on_device.class_weight = ce.class_weight.to(device);
  const LossAndGradients got = evaluate(loss.fused, x.to(device), w.to(device), y.to(device), on_device, rows);
  const LossAndGradients want = reference(loss, x, w, y, ce);
  INFO(loss.name << " " << ce.name << " B=" << x.size(0) << " C=" << w.size(0) << " D=" << w.size(1) << " chunking="
                 << (rows > 0   ? std::to_string(rows) + " rows"
                     : rows < 0 ? std::to_string(-rows) + " classes"
                                : std::string("auto"))
                 << " " << x.scalar_type());
  CHECK(got.loss.scalar_type() == (x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat));
  CHECK(near(got.loss, want.loss, rtol, atol));
  CHECK(near(got.grad_features, want.grad_features, rtol, atol));
  CHECK(near(got.grad_weight, want.grad_weight, rtol, atol));
  CHECK(got.grad_features.scalar_type() == x.scalar_type());
  CHECK(got.grad_weight.scalar_type() == w.scalar_type());
}

}  // namespace testing
