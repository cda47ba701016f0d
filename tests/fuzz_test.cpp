// Differential fuzzing of the losses: seeded random cases — every margin and its hyper-parameters
// (sub-centers, feature norms, running statistics included), shapes, dtypes, strides, reductions,
// ignore_index, smoothing, class weights, cosines at and next to ±1 and θ + m near π, chunk
// sizes — each compared with the float64 composite. A failure names its seed;
// ANGULAR_FUZZ_SEED=<seed> replays that case alone and ANGULAR_FUZZ_CASES=<n> changes how many
// run. CTest runs the file on the AVX2 and the portable copies of the CPU kernels
// (kernels.portable).

#include "support/linear.hpp"
#include "support/margins.hpp"

#include <cstdlib>
#include <random>

using namespace testing;

namespace {

/// The seeds to run: ANGULAR_FUZZ_SEED alone, or `count` (ANGULAR_FUZZ_CASES) from `first`.
std::vector<uint64_t> seeds(uint64_t first, int64_t count) {
  if (const char* one = std::getenv("ANGULAR_FUZZ_SEED")) return {std::strtoull(one, nullptr, 10)};
  if (const char* n = std::getenv("ANGULAR_FUZZ_CASES")) count = std::strtoll(n, nullptr, 10);
  std::vector<uint64_t> out;
  for (int64_t i = 0; i < count; ++i) out.push_back(first + static_cast<uint64_t>(i));
  return out;
}

struct Draw {
  std::mt19937_64 rng;
  double uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); }
  int64_t integer(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }
  bool chance(double p) { return uniform(0, 1) < p; }
};

/// A random margin with hyper-parameters over their whole valid range (and its per-row
/// inputs: feature norms, running statistics, curriculum weight).
Margin draw_margin(Draw& d) {
  using angular::detail::MarginKind;
  const auto params = [](double scale, double margin) { return margin_params(scale, margin); };
  switch (d.integer(0, 8)) {
    case 0: return {"arc", MarginKind::arc, arc_params(d.uniform(0.25, 8)), 1};
    case 1: {
      auto p = params(d.uniform(1, 64), d.chance(0.1) ? 0.0 : d.uniform(0, 1.5));
      p.exact_gradient = !d.chance(0.2);
      p.continuation = !d.chance(0.2);
      return {"arcface", MarginKind::arcface, p, p.scale};
    }
    case 2: {
      const double s = d.uniform(1, 64);
      return {"cosface", MarginKind::cosface, cosface_params(s, d.uniform(0, 0.8)), s};
    }
    case 3: {
      const double s = d.uniform(1, 32);
      return {"normface", MarginKind::normface, params(s, 0), s};
    }
    case 4: {
      auto p = params(d.uniform(1, 64), d.uniform(0, 1.5));
      p.angle_factor = d.chance(0.2) ? 1.0 : d.uniform(0.5, 3);
      p.cosine_margin = d.chance(0.3) ? 0.0 : d.uniform(0, 0.5);
      return {"combined", MarginKind::combined, p, p.scale};
    }
    case 5: {
      const auto m = static_cast<double>(d.integer(1, 5));
      const auto p = sphereface_params(m, d.chance(0.3) ? 0.0 : d.uniform(0, 10));
      const double norm_hi = d.uniform(0.5, 10);
      return {"sphereface", MarginKind::sphereface, p, norm_hi * (2 * m - 1), norm_hi / 4, norm_hi, d.rng()};
    }
    case 6: {
      Margin m{"adaface", MarginKind::adaface, params(d.uniform(1, 64), d.uniform(0, 0.8))};
      m.logit_size = m.params.scale;
      m.norm_lo = d.uniform(0.5, 20);
      m.norm_hi = m.norm_lo + d.uniform(0, 30);
      m.seed = d.rng();
      m.norm_mean = d.uniform(m.norm_lo, m.norm_hi);
      m.norm_std = d.uniform(0.01, 20);
      m.h = d.uniform(0.1, 1);
      return m;
    }
    case 7: {
      Margin m{"curricularface", MarginKind::curricularface, params(d.uniform(1, 64), d.uniform(0, 1.5))};
      m.logit_size = 2 * m.params.scale;
      m.t = d.uniform(-1, 1);
      return m;
    }
    default: {
      auto p = params(d.uniform(1, 64), d.uniform(0, 1.5));
      p.sub_centers = d.integer(2, 4);
      return {"subcenter-arcface", MarginKind::arcface, p, p.scale};
    }
  }
}

CrossEntropyCase draw_cross_entropy(Draw& d, int64_t classes) {
  CrossEntropyCase c;
  const int64_t reduction = d.integer(0, 2);
  const std::vector<angular::reduction_t> reductions = {torch::kMean, torch::kSum, torch::kNone};
  c.reduction = reductions[static_cast<size_t>(reduction)];
  c.name = reduction == 0 ? "mean" : reduction == 1 ? "sum" : "none";
  if (d.chance(0.3)) c.ignore_index = d.integer(0, classes - 1), c.name += "+ignore";
  if (d.chance(0.3)) c.label_smoothing = d.chance(0.1) ? 1.0 : d.uniform(0, 1), c.name += "+smoothing";
  if (d.chance(0.3)) c.class_weight = uniform({classes}, 0.1, 3, d.rng()), c.name += "+weights";
  return c;
}

/// Cosines in [−1, 1] with, in some cases, exact ±1, values within 1e-6 of them, and target
/// cosines near −1 (θ + m past π for ArcFace).
at::Tensor draw_cosines(Draw& d, int64_t rows, int64_t classes, const at::Tensor& y) {
  at::Tensor cos = uniform({rows, classes}, -1, 1, d.rng());
  if (rows == 0) return cos;
  if (d.chance(0.3)) {
    const at::Tensor edge = uniform({rows, classes}, 0, 1, d.rng()) < 0.2;
    const at::Tensor near = at::sign(cos) * (1 - uniform({rows, classes}, 0, 1e-6, d.rng()) * d.integer(0, 1));
    cos = at::where(edge, near, cos);
  }
  if (d.chance(0.2)) {
    const at::Tensor column = y.clamp(0, classes - 1).unsqueeze(1);
    cos.scatter_(1, column, uniform({rows, 1}, -1, -0.9, d.rng()));
  }
  return cos;
}

/// Contiguous, transposed storage, or every other column of a wider tensor.
at::Tensor draw_layout(Draw& d, const at::Tensor& t) {
  const int64_t layout = d.integer(0, 5);
  if (layout == 4) return t.t().contiguous().t();
  if (layout == 5) return at::repeat_interleave(t, 2, 1).slice(1, 0, 2 * t.size(1), 2);
  return t;
}

at::ScalarType draw_dtype(Draw& d) {
  const int64_t k = d.integer(0, 9);
  return k < 6 ? at::kFloat : k < 8 ? at::kDouble : k == 8 ? at::kHalf : at::kBFloat16;
}

}  // namespace

TEST_CASE("differential fuzzing: 8000 seeded cosine-level cases against the float64 reference", "[kernels][fuzz]") {
  for (const uint64_t seed : seeds(1, 8000)) {
    Draw d{std::mt19937_64(seed)};
    at::manual_seed(seed);  // the comparison's random projection
    const Margin margin = draw_margin(d);
    const int64_t rows = d.chance(0.05) ? 0 : d.integer(1, 48);
    const int64_t classes = d.chance(0.05) ? 1 : d.chance(0.05) ? d.integer(1025, 3000) : d.integer(2, 300);
    const CrossEntropyCase c = draw_cross_entropy(d, classes);
    at::Tensor y = at::randint(classes, {rows}, at::make_generator<at::CPUGeneratorImpl>(d.rng()), at::kLong);
    if (c.ignore_index >= 0 && rows > 0) y[0] = c.ignore_index;
    const at::Tensor cos = draw_layout(d, draw_cosines(d, rows, classes * margin.params.sub_centers, y));
    const at::ScalarType dtype = draw_dtype(d);
    const auto& p = margin.params;
    INFO("seed " << seed << " (replay: ANGULAR_FUZZ_SEED=" << seed << "): " << margin.name << " scale " << p.scale
                 << " margin " << p.margin << " m1 " << p.angle_factor << " m3 " << p.cosine_margin << " lambda "
                 << p.lambda << (p.exact_gradient ? "" : " straight-through") << (p.continuation ? "" : " uncontinued") << " K " << p.sub_centers << " norms ["
                 << margin.norm_lo << ", " << margin.norm_hi << "] mean " << margin.norm_mean << " std "
                 << margin.norm_std << " h " << margin.h << " t " << margin.t
                 << (cos.is_contiguous() ? "" : " non-contiguous"));
    check_against_reference(margin, cos, y, c, dtype);
  }
}

TEST_CASE("differential fuzzing: 2000 seeded features-level cases with random chunks against the float64 composite",
          "[kernels][linear][fuzz]") {
  const auto all = losses();
  for (const uint64_t seed : seeds(100001, 2000)) {
    Draw d{std::mt19937_64(seed)};
    at::manual_seed(seed);
    const LossUnderTest& loss = all[static_cast<size_t>(d.integer(0, static_cast<int64_t>(all.size()) - 1))];
    const int64_t rows = d.chance(0.05) ? 0 : d.integer(1, 40);
    const int64_t classes = d.chance(0.05) ? 1 : d.integer(2, 400);
    const int64_t dim = d.integer(1, 40);
    const int64_t chunk_rows = d.chance(0.2) ? 0 : d.integer(1, std::max<int64_t>(1, rows + 2));
    const CrossEntropyCase c = draw_cross_entropy(d, classes);
    at::Tensor y = at::randint(classes, {rows}, at::make_generator<at::CPUGeneratorImpl>(d.rng()), at::kLong);
    if (c.ignore_index >= 0 && rows > 0) y[0] = c.ignore_index;
    // With D <= 3 some pairs are (nearly) parallel, and float32's rounding of |cos| ≈ 1 is
    // multiplied by Arc's slope k/sin θ in any float32 implementation: those run in float64.
    const bool is_double = dim <= 3 || d.chance(0.25);
    const at::Tensor x = draw_layout(d, uniform({rows, dim}, -2, 2, d.rng())).to(is_double ? at::kDouble : at::kFloat);
    const at::Tensor w = draw_layout(d, uniform({classes, dim}, -2, 2, d.rng())).to(x.scalar_type());
    INFO("seed " << seed << " (replay: ANGULAR_FUZZ_SEED=" << seed << ")");
    check_against_composite(loss, x, w, y, c, chunk_rows, is_double ? 1e-10 : 5e-5, is_double ? 1e-9 : 2e-6);
  }
}
