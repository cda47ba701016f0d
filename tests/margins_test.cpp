// The margins beyond the paper's four — combined, SphereFace, sub-center ArcFace, AdaFace,
// CurricularFace, ArcFace's straight-through gradient — against their papers' formulas
// written plainly here in float64 ATen (shared with the library only through ATen's own
// cross-entropy), on the fused and the composite paths, and their special cases
// (margins_modules_test.cpp: the features-level paths, buffers, modules and errors).

#include "support/gradcheck.hpp"
#include "support/linear.hpp"
#include "support/margins.hpp"

using namespace testing;

namespace {

namespace F = angular::functional;
using angular::kPi;

/// θ of cosines, clamped as the README's "The losses" says.
at::Tensor theta_of(const at::Tensor& c) { return at::acos(c.clamp(-1 + 0x1p-23, 1 - 0x1p-23)); }

/// Logits `others` with each kept row's label column replaced by `label_logit` [B].
at::Tensor on_label(const at::Tensor& others, const at::Tensor& label_logit, const at::Tensor& y, int64_t ignore) {
  const at::Tensor kept = y != ignore;
  const at::Tensor column = at::one_hot(at::where(kept, y, at::zeros_like(y)), others.size(1)).to(at::kBool) &
                            kept.unsqueeze(1);
  return at::where(column, label_logit.unsqueeze(1), others);
}

/// Each row's label cosine (class 0 for ignored rows).
at::Tensor label_cosine(const at::Tensor& cos, const at::Tensor& y, int64_t ignore) {
  return cos.gather(1, at::where(y != ignore, y, at::zeros_like(y)).unsqueeze(1)).squeeze(1);
}

/// ArcFace's label term cos(θ + m), s·(c − m sin m) past θ + m = π (before the scale).
at::Tensor arcface_label(const at::Tensor& c, double m) {
  const at::Tensor theta = theta_of(c);
  return at::where(theta + m <= kPi, at::cos(theta + m), c - m * std::sin(m));
}

/// PyTorch's cross-entropy of the logits with the case's settings.
at::Tensor cross_entropy(const at::Tensor& z, const at::Tensor& y, const CrossEntropyCase& ce) {
  std::optional<at::Tensor> w;
  if (ce.class_weight.defined()) w = ce.class_weight.to(z.scalar_type());
  return at::cross_entropy_loss(z, y, w, torch::enumtype::reduction_get_enum(ce.reduction), ce.ignore_index,
                                ce.label_smoothing);
}

/// The papers' formulas. Each takes float64 cosines and returns the loss.
struct Paper {
  static at::Tensor combined(const at::Tensor& cos, const at::Tensor& y, double s, double m1, double m2, double m3,
                             const CrossEntropyCase& ce) {
    const at::Tensor c = label_cosine(cos, y, ce.ignore_index);
    const at::Tensor a = m1 * theta_of(c) + m2;
    const double step = std::cos((kPi - m2) / m1) + std::cos(m2) + m2 * std::sin(m2);
    const at::Tensor label = at::where(a <= kPi, at::cos(a) - m3, c - m3 - step);
    return cross_entropy(s * on_label(cos, label, y, ce.ignore_index), y, ce);
  }
  static at::Tensor sphereface(const at::Tensor& cos, const at::Tensor& norms, const at::Tensor& y, int m,
                               double lambda, const CrossEntropyCase& ce) {
    const at::Tensor c = label_cosine(cos, y, ce.ignore_index);
    const at::Tensor theta = theta_of(c);
    const at::Tensor k = at::floor(m * theta / kPi).clamp_max(m - 1).detach();
    const at::Tensor psi = at::pow(-1.0, k) * at::cos(m * theta) - 2 * k;
    const at::Tensor label = (lambda * c + psi) / (1 + lambda);
    return cross_entropy(norms.unsqueeze(1) * on_label(cos, label, y, ce.ignore_index), y, ce);
  }
  static at::Tensor subcenter_arcface(const at::Tensor& cos, const at::Tensor& y, int64_t k, double s, double m,
                                      const CrossEntropyCase& ce) {
    const at::Tensor classes = std::get<0>(cos.view({cos.size(0), cos.size(1) / k, k}).max(2));
    return cross_entropy(s * on_label(classes, arcface_label(label_cosine(classes, y, ce.ignore_index), m), y,
                                      ce.ignore_index),
                         y, ce);
  }
  static at::Tensor adaface(const at::Tensor& cos, const at::Tensor& norms, const at::Tensor& y, double mean,
                            double std, double s, double m, double h, const CrossEntropyCase& ce) {
    const at::Tensor z = ((norms.detach().clamp(0.001, 100) - mean) / (std + 1e-3) * h).clamp(-1, 1);
    const at::Tensor g_angle = -m * z, g_add = m * z + m;
    const at::Tensor c = label_cosine(cos, y, ce.ignore_index);
    const at::Tensor label = at::cos((theta_of(c) + g_angle).clamp(1e-3, kPi - 1e-3)) - g_add;
    return cross_entropy(s * on_label(cos, label, y, ce.ignore_index), y, ce);
  }
  static at::Tensor curricularface(const at::Tensor& cos, const at::Tensor& y, double t, double s, double m,
                                   const CrossEntropyCase& ce) {
    const at::Tensor c = label_cosine(cos, y, ce.ignore_index);
    const at::Tensor threshold = at::cos(theta_of(c) + m).detach().unsqueeze(1);
    const at::Tensor others = at::where(cos > threshold, cos * (t + cos), cos);
    return cross_entropy(s * on_label(others, arcface_label(c, m), y, ce.ignore_index), y, ce);
  }
  static at::Tensor straight_through_arcface(const at::Tensor& cos, const at::Tensor& y, double s, double m,
                                             const CrossEntropyCase& ce) {
    const at::Tensor c = label_cosine(cos, y, ce.ignore_index);
    const at::Tensor label = c + (arcface_label(c, m) - c).detach();  // insightface: margin under no_grad
    return cross_entropy(s * on_label(cos, label, y, ce.ignore_index), y, ce);
  }
};

/// A margin's library loss and paper loss as functions of (cos, norms).
struct Case {
  std::string name;
  int64_t sub_centers;
  std::function<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const CrossEntropyCase&)> library,
      paper;
};

constexpr double kMean = 22, kStd = 6;

std::vector<Case> cases() {
  const auto stat = [](double v, const at::Tensor& like) { return at::full({1}, v, like.options()); };
  return {
      {"combined", 1,
       [](auto& c, auto&, auto& y, auto& ce) {
         return F::combined_margin_loss(
             c, y, ce.apply(F::CombinedMarginLossFuncOptions().scale(30).m1(1.35).m2(0.3).m3(0.2)));
       },
       [](auto& c, auto&, auto& y, auto& ce) { return Paper::combined(c, y, 30, 1.35, 0.3, 0.2, ce); }},
      {"combined, m1 < 1", 1,
       [](auto& c, auto&, auto& y, auto& ce) {
         return F::combined_margin_loss(c, y, ce.apply(F::CombinedMarginLossFuncOptions().scale(30).m1(0.8).m2(1.2)));
       },
       [](auto& c, auto&, auto& y, auto& ce) { return Paper::combined(c, y, 30, 0.8, 1.2, 0, ce); }},
      {"sphereface", 1,
       [](auto& c, auto& n, auto& y, auto& ce) {
         return F::sphereface_loss(c, n, y, ce.apply(F::SphereFaceLossFuncOptions().margin(4).lambda(0.7)));
       },
       [](auto& c, auto& n, auto& y, auto& ce) { return Paper::sphereface(c, n, y, 4, 0.7, ce); }},
      {"sphereface, m = 3", 1,
       [](auto& c, auto& n, auto& y, auto& ce) {
         return F::sphereface_loss(c, n, y, ce.apply(F::SphereFaceLossFuncOptions().margin(3)));
       },
       [](auto& c, auto& n, auto& y, auto& ce) { return Paper::sphereface(c, n, y, 3, 0, ce); }},
      {"subcenter-arcface", 3,
       [](auto& c, auto&, auto& y, auto& ce) {
         return F::subcenter_arcface_loss(c, y,
                                          ce.apply(F::SubCenterArcFaceLossFuncOptions().sub_centers(3).scale(32)));
       },
       [](auto& c, auto&, auto& y, auto& ce) { return Paper::subcenter_arcface(c, y, 3, 32, 0.5, ce); }},
      {"adaface", 1,
       [stat](auto& c, auto& n, auto& y, auto& ce) {
         return F::adaface_loss(c, n, y, stat(kMean, c), stat(kStd, c), ce.apply(F::AdaFaceLossFuncOptions()));
       },
       [](auto& c, auto& n, auto& y, auto& ce) { return Paper::adaface(c, n, y, kMean, kStd, 64, 0.4, 0.333, ce); }},
      {"curricularface", 1,
       [stat](auto& c, auto&, auto& y, auto& ce) {
         return F::curricularface_loss(c, y, stat(0.35, c), ce.apply(F::CurricularFaceLossFuncOptions()));
       },
       [](auto& c, auto&, auto& y, auto& ce) { return Paper::curricularface(c, y, 0.35, 64, 0.5, ce); }},
      {"arcface-straight-through", 1,
       [](auto& c, auto&, auto& y, auto& ce) {
         return F::arcface_loss(c, y, ce.apply(F::ArcFaceLossFuncOptions().exact_gradient(false)));
       },
       [](auto& c, auto&, auto& y, auto& ce) { return Paper::straight_through_arcface(c, y, 64, 0.5, ce); }},
  };
}

/// Cosines with ±1, values next to them and label cosines near −1 (θ + m past π).
at::Tensor edgy_cosines(int64_t rows, int64_t columns, uint64_t seed) {
  at::Tensor cos = uniform({rows, columns}, -1, 1, seed);
  const std::vector<double> edges = {1.0, -1.0, 1 - 1e-6, -1 + 1e-6, -0.99, 0.999};
  for (int64_t i = 0; i < rows; ++i) cos[i][(i * 7) % columns] = edges[static_cast<size_t>(i) % edges.size()];
  return cos;
}

struct Gradients {
  at::Tensor value, cos, norms;
};

Gradients run(const std::function<at::Tensor(const at::Tensor&, const at::Tensor&)>& f, const at::Tensor& cos,
              const at::Tensor& norms) {
  const at::Tensor c = cos.detach().clone().requires_grad_(true), n = norms.detach().clone().requires_grad_(true);
  const at::Tensor value = f(c, n);
  (value * (value.dim() == 0 ? at::ones({}, value.options()) : uniform(value.sizes(), 0.5, 1.5, 3))).sum().backward();
  return {value.detach(), c.grad(), n.grad()};
}

}  // namespace

TEST_CASE("the new margins' float64 values and gradients equal their papers' formulas, fused and composite",
          "[kernels][margins]") {
  const int64_t rows = 14, classes = 9;
  const at::Tensor norms = uniform({rows}, 5, 40, 4);
  for (const auto& m : cases()) {
    const at::Tensor cos = edgy_cosines(rows, classes * m.sub_centers, 5);
    const at::Tensor y = labels(rows, classes, 6);
    for (const auto& ce : cross_entropy_cases(classes)) {
      for (const bool composite : {false, true}) {
        INFO(m.name << " " << ce.name << (composite ? " composite" : " fused"));
        std::optional<angular::CompositePathGuard> guard;
        if (composite) guard.emplace();
        const Gradients got = run([&](auto& c, auto& n) { return m.library(c, n, y, ce); }, cos, norms);
        guard.reset();
        const Gradients want = run([&](auto& c, auto& n) { return m.paper(c, n, y, ce); }, cos, norms);
        CHECK(at::allclose(got.value, want.value, 1e-10, 1e-10));
        CHECK(at::allclose(got.cos, want.cos, 1e-8, 1e-10));
        if (want.norms.defined() && got.norms.defined()) CHECK(at::allclose(got.norms, want.norms, 1e-8, 1e-10));
        else CHECK(got.norms.defined() == want.norms.defined());
      }
    }
  }
}

TEST_CASE("the new margins in float32, float16 and non-contiguous cosines against the float64 paper",
          "[kernels][margins]") {
  const int64_t rows = 40, classes = 300;
  const at::Tensor norms = uniform({rows}, 5, 40, 7);
  for (const auto& m : cases()) {
    const at::Tensor wide = uniform({rows, 2 * classes * m.sub_centers}, -1, 1, 8);
    const at::Tensor y = labels(rows, classes, 9);
    const CrossEntropyCase ce = cross_entropy_cases(classes)[4];  // mean + ignore + smoothing + weights
    for (const auto dtype : {at::kFloat, at::kHalf}) {
      INFO(m.name << " " << dtype);
      const at::Tensor cos = wide.to(dtype).slice(1, 0, wide.size(1), 2);  // every other column
      REQUIRE_FALSE(cos.is_contiguous());
      const Gradients got = run([&](auto& c, auto& n) { return m.library(c, n, y, ce); }, cos,
                                norms.to(at::kFloat));
      const Gradients exact = run([&](auto& c, auto& n) { return m.paper(c, n, y, ce); }, cos.to(at::kDouble), norms);
      CHECK(got.value.scalar_type() == at::kFloat);
      CHECK(got.cos.scalar_type() == dtype);
      // The float64 formula on the same rounded cosines: float32 arithmetic apart, and the
      // gradient's own rounding to half.
      CHECK(at::allclose(got.value.to(at::kDouble), exact.value, 1e-4, 1e-4));
      CHECK(at::allclose(got.cos.to(at::kDouble), exact.cos, dtype == at::kHalf ? 2e-3 : 1e-3,
                         dtype == at::kHalf ? 1e-4 : 1e-5));
    }
  }
}

TEST_CASE("gradcheck of the new margins over cosines (and SphereFace's norms) in float64",
          "[kernels][margins][gradient]") {
  const int64_t rows = 5, classes = 4;
  const at::Tensor norms = uniform({rows}, 1, 3, 10);
  for (const auto& m : cases()) {
    // The straight-through gradient is by design not the derivative of the loss.
    if (m.name == "arcface-straight-through") continue;
    const at::Tensor cos = uniform({rows, classes * m.sub_centers}, -0.95, 0.95, 11);
    const at::Tensor y = labels(rows, classes, 12);
    for (const int index : {0, 4, 14}) {
      const CrossEntropyCase ce = cross_entropy_cases(classes)[index];
      // AdaFace's norms enter without gradient, by design: only SphereFace's are an input.
      const bool with_norms = m.name.rfind("sphereface", 0) == 0;
      const auto result = gradcheck(
          [&](const std::vector<at::Tensor>& in) { return m.library(in[0], with_norms ? in[1] : norms, y, ce); },
          with_norms ? std::vector<at::Tensor>{cos, norms} : std::vector<at::Tensor>{cos});
      INFO(m.name << " " << ce.name << ": " << result.report);
      CHECK(result.ok);
    }
  }
}

TEST_CASE("special cases: combined = ArcFace and CosFace, K = 1 = ArcFace, AdaFace at the mean norm = CosFace, "
          "SphereFace m = 1 = the softmax over ‖x‖·cos",
          "[kernels][margins]") {
  const int64_t rows = 12, classes = 30;
  // Cosines at ±1 for the margins that are equal there too; AdaFace's angle clip and
  // SphereFace's clamp of ψ make theirs differ from the plain losses within 1e-3 of ±1.
  const at::Tensor edgy = edgy_cosines(rows, classes, 13).to(at::kFloat);
  const at::Tensor inner = uniform({rows, classes}, -0.99, 0.99, 13).to(at::kFloat);
  const at::Tensor y = labels(rows, classes, 14);
  for (const auto& ce : cross_entropy_cases(classes)) {
    INFO(ce.name);
    at::Tensor cos = edgy;
    const auto same = [&](auto&& a, auto&& b) {
      const Gradients ga = run([&](auto& c, auto&) { return a(c); }, cos, at::ones({rows}));
      const Gradients gb = run([&](auto& c, auto&) { return b(c); }, cos, at::ones({rows}));
      CHECK(at::allclose(ga.value, gb.value, 1e-6, 1e-5));
      CHECK(at::allclose(ga.cos, gb.cos, 1e-5, 1e-5));
    };
    same([&](auto& c) { return F::combined_margin_loss(c, y, ce.apply(F::CombinedMarginLossFuncOptions().m2(0.4))); },
         [&](auto& c) { return F::arcface_loss(c, y, ce.apply(F::ArcFaceLossFuncOptions().margin(0.4))); });
    same([&](auto& c) {
           return F::combined_margin_loss(c, y, ce.apply(F::CombinedMarginLossFuncOptions().scale(30).m2(0).m3(0.35)));
         },
         [&](auto& c) { return F::cosface_loss(c, y, ce.apply(F::CosFaceLossFuncOptions().scale(30))); });
    same([&](auto& c) {
           return F::subcenter_arcface_loss(c, y, ce.apply(F::SubCenterArcFaceLossFuncOptions().sub_centers(1)));
         },
         [&](auto& c) { return F::arcface_loss(c, y, ce.apply(F::ArcFaceLossFuncOptions())); });
    cos = inner;
    // Every norm at the running mean: ẑ = 0, so g_angle = 0 and g_add = m.
    same([&](auto& c) {
           return F::adaface_loss(c, at::full({rows}, 22.0), y, at::full({1}, 22.0), at::full({1}, 5.0),
                                  ce.apply(F::AdaFaceLossFuncOptions().scale(30).margin(0.35)));
         },
         [&](auto& c) { return F::cosface_loss(c, y, ce.apply(F::CosFaceLossFuncOptions().scale(30))); });
    const at::Tensor norms = uniform({rows}, 1, 9, 15).to(at::kFloat);
    same([&](auto& c) { return F::sphereface_loss(c, norms, y, ce.apply(F::SphereFaceLossFuncOptions().margin(1))); },
         [&](auto& c) { return cross_entropy(c * norms.unsqueeze(1), y, ce); });
  }
}

TEST_CASE("the combined margin continues monotonically past m1·θ + m2 = π, and ArcFace's gradient straight through",
          "[kernels][margins]") {
  // The label logit over a fine grid of label cosines, through the fused kernel (C = 1 makes
  // the loss lse − z = 0, so read the logit off a second class fixed at cosine 0).
  const at::Tensor grid = at::linspace(-1, 1, 20001, at::kDouble);
  const at::Tensor cos = at::stack({grid, at::zeros_like(grid)}, 1);
  const at::Tensor y = at::zeros({grid.size(0)}, at::kLong);
  const CrossEntropyCase none{"none", torch::kNone, -100, 0.0, {}};
  for (const auto& [m1, m2, m3] :
       std::vector<std::tuple<double, double, double>>{{1, 0.5, 0}, {1.35, 0.3, 0.2}, {2, 0.5, 0.1}, {0.8, 1.2, 0}}) {
    INFO("m1 " << m1 << " m2 " << m2 << " m3 " << m3);
    const at::Tensor loss = F::combined_margin_loss(
        cos, y, none.apply(F::CombinedMarginLossFuncOptions().scale(1).m1(m1).m2(m2).m3(m3)));
    // loss = log(1 + e^{0 − z}) falls as z grows: z never falls as c grows.
    const at::Tensor z = -at::log(at::expm1(loss));
    CHECK((z.slice(0, 1) - z.slice(0, 0, -1) >= -1e-12).all().item<bool>());
    // Past the switch (when there is one) the slope in c is 1.
    const double switch_c = std::cos(std::min(kPi, (kPi - m2) / m1));
    const at::Tensor past = grid < switch_c - 1e-3;
    if (past.any().item<bool>()) {
      const at::Tensor dz = (z.slice(0, 1) - z.slice(0, 0, -1)) / (grid.slice(0, 1) - grid.slice(0, 0, -1));
      CHECK((dz.masked_select(past.slice(0, 1) & past.slice(0, 0, -1)) - 1).abs().max().item<double>() < 1e-6);
    }
  }
  // Straight through: the label's slope is s wherever the margin is, the value ArcFace's.
  const at::Tensor c = edgy_cosines(6, 5, 16).to(at::kFloat);
  const at::Tensor y6 = labels(6, 5, 17);
  const Gradients through =
      run([&](auto& x,
              auto&) { return F::arcface_loss(x, y6, F::ArcFaceLossFuncOptions().scale(8).exact_gradient(false)); },
          c, at::ones({6}));
  const Gradients exact = run(
      [&](auto& x, auto&) { return F::arcface_loss(x, y6, F::ArcFaceLossFuncOptions().scale(8)); }, c, at::ones({6}));
  CHECK(at::equal(through.value, exact.value));
  const at::Tensor off_label = at::ones_like(c, at::kBool).scatter_(1, y6.unsqueeze(1), false);
  CHECK(at::allclose(through.cos.masked_select(off_label), exact.cos.masked_select(off_label)));
  CHECK_FALSE(at::allclose(through.cos, exact.cos));
}
