// The fused kernels against the composite float64 reference: values and gradients on random
// shapes and the edge cases, every cross-entropy setting, every input dtype.

#include "support/gradcheck.hpp"
#include "support/margins.hpp"

#include <angular/metrics.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <thread>

using namespace testing;

namespace {

/// Cosines in [−1, 1], with exact ±1 and values within 1e-6 of them sprinkled in.
at::Tensor cosines(int64_t rows, int64_t classes, uint64_t seed) {
  at::Tensor cos = uniform({rows, classes}, -1, 1, seed);
  const std::vector<double> edges = {1.0, -1.0, 1 - 1e-6, -1 + 1e-6, 1 - 3e-7, -1 + 3e-7};
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t e = 0; e < static_cast<int64_t>(edges.size()) && e < classes; e += 1)
      if ((i + e) % 3 == 0) cos[i][(i * 7 + e * 5) % classes] = edges[e];
  return cos;
}

}  // namespace

TEST_CASE("CPU tensors take the fused kernel, other devices the composite", "[kernels]") {
  CHECK(angular::kernel_path(at::zeros({2, 3})) == angular::KernelPath::fused_cpu);
  CHECK(angular::kernel_path(at::empty({2, 3}, at::TensorOptions().device(at::kMeta))) ==
        angular::KernelPath::composite);
  CHECK(std::string(angular::to_string(angular::KernelPath::fused_cuda)) == "fused_cuda");
}

TEST_CASE("fused CPU kernels match the float64 reference on every shape and setting",
          "[kernels]") {
  struct Shape {
    int64_t rows, classes;
  };
  // Large C with few rows keeps the float64 reference cheap.
  const std::vector<Shape> shapes = {{0, 10}, {1, 1}, {7, 1}, {7, 2}, {1, 10}, {7, 10},
                                     {256, 10}, {256, 1000}, {3, 100000}};
  for (const auto& margin : margins()) {
    SECTION(margin.name) {
      for (const auto& shape : shapes) {
        const at::Tensor cos = cosines(shape.rows, shape.classes, 100 + shape.classes);
        const at::Tensor y = labels(shape.rows, shape.classes, 5);
        const auto cases = cross_entropy_cases(shape.classes);
        for (const auto& c : cases) {
          if (shape.classes >= 1000 && c.name.find("+") != std::string::npos) continue;
          check_against_reference(margin, cos, y, c);
        }
        // The big shapes get the combined setting once.
        if (shape.classes >= 1000) check_against_reference(margin, cos, y, cases[4]);
      }
    }
  }
}

TEST_CASE("non-contiguous cosines", "[kernels]") {
  const at::Tensor wide = cosines(9, 40, 31);
  const at::Tensor strided = wide.index({at::indexing::Slice(), at::indexing::Slice(0, 40, 2)});
  const at::Tensor transposed = cosines(20, 9, 32).t();
  REQUIRE_FALSE(strided.is_contiguous());
  REQUIRE_FALSE(transposed.is_contiguous());
  for (const auto& margin : margins()) {
    for (const auto& c : cross_entropy_cases(20)) {
      if (c.name.rfind("mean", 0) != 0) continue;
      check_against_reference(margin, strided, labels(9, 20, 3), c);
      check_against_reference(margin, transposed, labels(9, 20, 4), c);
    }
  }
}

TEST_CASE("float16, bfloat16 and float64 cosines", "[kernels][dtype]") {
  const at::Tensor cos = cosines(33, 70, 41);
  const at::Tensor y = labels(33, 70, 6);
  for (const auto& margin : margins()) {
    for (auto dtype : {at::kHalf, at::kBFloat16, at::kDouble}) {
      check_against_reference(margin, cos, y, cross_entropy_cases(70)[0], dtype);
      check_against_reference(margin, cos, y, cross_entropy_cases(70)[4], dtype);
    }
  }
}

TEST_CASE("a NaN or infinite cosine makes its row's loss and gradient NaN, as in the reference", "[kernels]") {
  // 4 rows of 20: a bad value off the label in row 0 (in the vector part), on the label in row
  // 1, in the scalar tail in row 2 (columns 16–19); row 3 stays finite. The clamp before
  // arccos would make an infinite cosine finite, and an −∞ logit's exponential is 0.
  const at::Tensor y = at::tensor({2, 5, 7, 3}, at::kLong);
  CrossEntropyCase none{"none", torch::kNone, -100, 0.0, {}};
  for (const double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                           -std::numeric_limits<double>::infinity()}) {
    at::Tensor cos = cosines(4, 20, 61);
    cos[0][9] = bad;
    cos[1][5] = bad;
    cos[2][18] = bad;
    for (const auto& margin : margins()) {
      INFO(margin.name << " with " << bad);
      const at::Tensor c = cos.to(at::kFloat).requires_grad_(true);
      const at::Tensor got = margin.loss(c, y, none);
      got.sum().backward();
      const at::Tensor want = margin.reference(cos, y, none);
      for (int64_t i = 0; i < 4; ++i) {
        INFO("row " << i);
        CHECK(std::isnan(want[i].item<double>()) == (i < 3));
        CHECK(std::isnan(got[i].item<double>()) == (i < 3));
        CHECK(at::isnan(c.grad()[i]).all().item<bool>() == (i < 3));
        CHECK(at::isnan(c.grad()[i]).any().item<bool>() == (i < 3));
      }
    }
  }
}

TEST_CASE("fused kernels and angle metrics: bitwise repeatable, and the same on 1 and 2 threads",
          "[kernels][determinism]") {
  const int threads = at::get_num_threads();
  const at::Tensor cos = uniform({200, 3000}, -1, 1, 41).to(at::kFloat);
  const at::Tensor y = labels(200, 3000, 6);
  const at::Tensor features = uniform({500, 32}, -1, 1, 42).to(at::kFloat);
  const at::Tensor classes = labels(500, 10, 8);
  const at::Tensor weight = uniform({10, 32}, -1, 1, 43);
  // Per-row losses (no ATen reduction in between), the gradient of their sum, the metrics.
  const auto run = [&] {
    std::vector<at::Tensor> out;
    for (const auto& margin : margins()) {
      const at::Tensor input = cos.clone().requires_grad_(true);
      CrossEntropyCase c{"none+all", torch::kNone, 1, 0.1, at::linspace(0.5, 2.0, 3000, at::kDouble)};
      const at::Tensor rows = margin.loss(input, y, c);
      rows.sum().backward();
      out.push_back(rows.detach());
      out.push_back(input.grad());
    }
    angular::metrics::AngleStats stats(10, 32);
    stats.update(features, classes);
    out.push_back(stats.sums());
    out.push_back(at::tensor({stats.compute(weight).wc_intra}, at::kDouble));
    return out;
  };
  at::set_num_threads(2);
  const auto first = run(), second = run();
  at::set_num_threads(1);
  const auto single = run();
  at::set_num_threads(threads);
  for (size_t i = 0; i < first.size(); ++i) {
    INFO("output " << i);
    CHECK(at::equal(first[i], second[i]));
    // Rows (and the metrics' columns) are each computed by one thread, whatever the count.
    CHECK(at::equal(first[i], single[i]));
  }
}

TEST_CASE("ArcFace's θ + m > π continuation in the fused kernel", "[kernels]") {
  // Labels' cosines around −cos(m): both branches, plus exact −1.
  const at::Tensor cos = at::tensor({-0.95, 0.1, 0.2, -0.80, 0.3, 0.0, -1.0, 0.5, 0.2}, at::kDouble)
                             .view({3, 3});
  const at::Tensor y = at::zeros({3}, at::kLong);
  for (const auto& c : cross_entropy_cases(3)) check_against_reference(margins()[1], cos, y, c);
}

TEST_CASE("gradcheck in float64 through the fused kernels", "[kernels][gradient]") {
  const at::Tensor cos = uniform({6, 5}, -0.98, 0.98, 51);
  const at::Tensor y = labels(6, 5, 8);
  for (const auto& margin : margins()) {
    if (!margin.params.exact_gradient) continue;  // straight through: by design not the derivative
    for (const auto& c : cross_entropy_cases(5)) {
      INFO(margin.name << " " << c.name);
      const auto result = gradcheck(
          [&](const std::vector<at::Tensor>& in) { return margin.loss(in[0], y, c); }, {cos});
      INFO(result.report);
      CHECK(result.ok);
    }
  }
}

namespace {

/// The largest error of f (on 8-float vectors) against `exact` (in double) over `xs`:
/// absolute, or relative to |exact| when `relative`.
template <class F, class Exact>
double worst_error(const std::vector<float>& xs, F f, Exact exact, bool relative) {
  using angular::detail::cpu::FloatVec;
  constexpr size_t kLanes = sizeof(FloatVec) / sizeof(float);
  double worst = 0;
  for (size_t begin = 0; begin < xs.size(); begin += kLanes) {
    float in[kLanes] = {}, out[kLanes];
    for (size_t l = 0; l < kLanes && begin + l < xs.size(); ++l) in[l] = xs[begin + l];
    FloatVec v;
    std::memcpy(&v, in, sizeof v);
    const FloatVec r = f(v);
    std::memcpy(out, &r, sizeof r);
    for (size_t l = 0; l < kLanes && begin + l < xs.size(); ++l) {
      const double want = exact(static_cast<double>(in[l]));
      const double error = std::abs(out[l] - want) / (relative ? std::max(std::abs(want), 1e-300) : 1.0);
      worst = std::max(worst, error);
    }
  }
  return worst;
}

#if ANGULAR_CPU_AVX2 && ANGULAR_CPU_AVX2_OPS
/// The AVX2 copy's math runs only inside functions compiled for AVX2; vectors cross into them
/// through memory (as arguments they would change ABI).
#define ANGULAR_AVX2_CALL(name, expr)                                                  \
  ANGULAR_TARGET_AVX2 void name##_avx2(const float* in, float* out) {                \
    angular::detail::cpu::FloatVec x;                                                \
    std::memcpy(&x, in, sizeof x);                                                   \
    const angular::detail::cpu::FloatVec r = expr;                                   \
    std::memcpy(out, &r, sizeof r);                                                  \
  }
ANGULAR_AVX2_CALL(acos, angular::detail::cpu::Avx2Math::acos(x))
ANGULAR_AVX2_CALL(asin, angular::detail::cpu::Avx2Math::asin(x))
ANGULAR_AVX2_CALL(rsqrt, angular::detail::cpu::Avx2Math::rsqrt(x))
ANGULAR_AVX2_CALL(sqrt, angular::detail::cpu::fast_sqrt<angular::detail::cpu::Avx2Ops>(x))
ANGULAR_AVX2_CALL(exp_nonpositive, angular::detail::cpu::Avx2Math::exp_nonpositive(x))
ANGULAR_AVX2_CALL(clamp, angular::detail::cpu::Avx2Math::clamp(x, -0.5f, 0.25f))
#undef ANGULAR_AVX2_CALL

/// f_avx2 as a function of one vector.
template <void (*f)(const float*, float*)>
angular::detail::cpu::FloatVec on_avx2(angular::detail::cpu::FloatVec x) {
  float in[sizeof x / sizeof(float)], out[sizeof x / sizeof(float)];
  std::memcpy(in, &x, sizeof x);
  f(in, out);
  std::memcpy(&x, out, sizeof x);
  return x;
}
#endif

std::vector<float> grid(double lo, double hi, int n) {
  std::vector<float> xs;
  for (int i = 0; i <= n; ++i) xs.push_back(static_cast<float>(lo + (hi - lo) * i / n));
  return xs;
}

std::vector<float> test_cosines() {
  std::vector<float> cosines = grid(-1, 1, 400000);
  for (float edge : {1.0f, -1.0f, 1 - 0x1p-24f, -1 + 0x1p-24f, 1 - 0x1p-23f, 0.5f, -0.5f, 0.0f})
    cosines.push_back(edge);
  return cosines;
}

std::vector<float> test_positives() {
  std::vector<float> positives;
  for (int i = -300; i <= 300; ++i) positives.push_back(static_cast<float>(std::pow(10.0, i / 10.0)));
  for (float x : grid(1e-7, 4, 100000)) positives.push_back(x);
  return positives;
}

}  // namespace

TEST_CASE("the CPU kernels' float math against double libm", "[kernels][math]") {
  namespace cpu = angular::detail::cpu;
  using cpu::FloatVec;
  const std::vector<float> cosines = test_cosines();
  const double acos_error = worst_error(cosines, [](FloatVec x) { return cpu::fast_acos(x); },
                                        [](double x) { return std::acos(x); }, false);
  INFO("acos: worst absolute error " << acos_error);
  CHECK(acos_error < 5e-7);  // 2 ulp of π
  const double asin_error = worst_error(cosines, [](FloatVec x) { return cpu::fast_asin(x); },
                                        [](double x) { return std::asin(x); }, false);
  INFO("asin: worst absolute error " << asin_error);
  CHECK(asin_error < 5e-7);

  // exp: where the kernels call it (x ≤ 0, down to float's underflow) and above.
  const double exp_error = worst_error(grid(-87, 88, 400000), [](FloatVec x) { return cpu::fast_exp(x); },
                                       [](double x) { return std::exp(x); }, true);
  INFO("exp: worst relative error " << exp_error);
  CHECK(exp_error < 5e-7);
  const double softmax_exp_error =
      worst_error(grid(-87, 0, 200000), [](FloatVec x) { return cpu::fast_exp_nonpositive(x); },
                  [](double x) { return std::exp(x); }, true);
  INFO("exp_nonpositive: worst relative error " << softmax_exp_error);
  CHECK(softmax_exp_error < 5e-7);
  CHECK(worst_error({-1000.0f, -88.0f}, [](FloatVec x) { return cpu::fast_exp_nonpositive(x); },
                    [](double) { return 0.0; }, false) < 1.2e-38);  // about 2^-126
  CHECK(worst_error({-1000.0f, -88.0f}, [](FloatVec x) { return cpu::fast_exp(x); },
                    [](double) { return 0.0; }, false) < 2e-38);

  const std::vector<float> positives = test_positives();
  const double estimate_error = worst_error(positives, [](FloatVec x) { return cpu::rsqrt_estimate(x); },
                                            [](double x) { return 1 / std::sqrt(x); }, true);
  INFO("rsqrt_estimate: worst relative error " << estimate_error);
  CHECK(estimate_error < 6.6e-4);
  const double rsqrt_error = worst_error(positives, [](FloatVec x) { return cpu::Math<float>::rsqrt(x); },
                                         [](double x) { return 1 / std::sqrt(x); }, true);
  INFO("Math<float>::rsqrt: worst relative error " << rsqrt_error);
  CHECK(rsqrt_error < 8e-7);
  const double sqrt_error = worst_error(positives, [](FloatVec x) { return cpu::fast_sqrt(x); },
                                        [](double x) { return std::sqrt(x); }, true);
  INFO("sqrt: worst relative error " << sqrt_error);
  CHECK(sqrt_error < 2e-7);
  CHECK(worst_error({0.0f}, [](FloatVec x) { return cpu::fast_sqrt(x); }, [](double) { return 0.0; }, false) == 0);
}

TEST_CASE("the AVX2 copy's float math (the processor's 1/√x estimate) against double libm",
          "[kernels][math][avx2]") {
#if ANGULAR_CPU_AVX2 && ANGULAR_CPU_AVX2_OPS
  if (!angular::detail::cpu::has_avx2()) return skip("this processor has no AVX2 (or ATEN_CPU_CAPABILITY=default)");
  const std::vector<float> cosines = test_cosines(), positives = test_positives();
  const double acos_error = worst_error(cosines, on_avx2<acos_avx2>, [](double x) { return std::acos(x); }, false);
  INFO("acos: worst absolute error " << acos_error);
  CHECK(acos_error < 5e-7);
  const double asin_error = worst_error(cosines, on_avx2<asin_avx2>, [](double x) { return std::asin(x); }, false);
  INFO("asin: worst absolute error " << asin_error);
  CHECK(asin_error < 5e-7);
  const double rsqrt_error =
      worst_error(positives, on_avx2<rsqrt_avx2>, [](double x) { return 1 / std::sqrt(x); }, true);
  INFO("rsqrt: worst relative error " << rsqrt_error);
  CHECK(rsqrt_error < 8e-7);
  const double sqrt_error = worst_error(positives, on_avx2<sqrt_avx2>, [](double x) { return std::sqrt(x); }, true);
  INFO("sqrt: worst relative error " << sqrt_error);
  CHECK(sqrt_error < 2e-7);
  CHECK(worst_error({0.0f}, on_avx2<sqrt_avx2>, [](double) { return 0.0; }, false) == 0);
  const double exp_error =
      worst_error(grid(-87, 0, 200000), on_avx2<exp_nonpositive_avx2>, [](double x) { return std::exp(x); }, true);
  INFO("exp_nonpositive: worst relative error " << exp_error);
  CHECK(exp_error < 5e-7);
  CHECK(worst_error({-1000.0f, -88.0f}, on_avx2<exp_nonpositive_avx2>, [](double) { return 0.0; }, false) < 1.2e-38);
  CHECK(worst_error(grid(-2, 2, 1000), on_avx2<clamp_avx2>, [](double x) { return std::clamp(x, -0.5, 0.25); },
                    false) == 0);
  float lanes[sizeof(angular::detail::cpu::FloatVec) / sizeof(float)];
  std::fill(std::begin(lanes), std::end(lanes), std::numeric_limits<float>::quiet_NaN());
  clamp_avx2(lanes, lanes);
  CHECK(std::all_of(std::begin(lanes), std::end(lanes), [](float x) { return std::isnan(x); }));
#else
  skip("no AVX2 copy in this build (not GCC on x86-64)");
#endif
}

namespace {

/// What `body` threw (null if nothing), or nullopt if it has not returned within `seconds` (it
/// runs on a thread of its own, left behind then).
std::optional<std::exception_ptr> outcome_within(double seconds, std::function<void()> body) {
  const auto outcome = std::make_shared<std::promise<std::exception_ptr>>();
  std::future<std::exception_ptr> future = outcome->get_future();
  std::thread([body = std::move(body), outcome] {
    try {
      body();
      outcome->set_value(nullptr);
    } catch (...) {
      outcome->set_value(std::current_exception());
    }
  }).detach();
  if (future.wait_for(std::chrono::duration<double>(seconds)) != std::future_status::ready) return std::nullopt;
  return future.get();
}

/// at::get_num_threads() at least 2 while it lives, so that parallel_rows uses its pool.
struct TwoThreads {
  int saved = at::get_num_threads();
  TwoThreads() { at::set_num_threads(std::max(saved, 2)); }
  ~TwoThreads() { at::set_num_threads(saved); }
};

}  // namespace

TEST_CASE("parallel_rows rethrows a range's exception once every range is done", "[kernels][parallel]") {
  namespace cpu = angular::detail::cpu;
  const TwoThreads threads;
  SECTION("a range of the pool's throws") {
    const auto outcome = outcome_within(60, [] {
      cpu::parallel_rows(4, 1, [](int64_t begin, int64_t) {
        if (begin > 0) throw std::runtime_error("pool range failed");
      });
    });
    REQUIRE(outcome.has_value());  // before: the caller waited for the failed range forever
    REQUIRE(*outcome != nullptr);
    CHECK_THROWS_WITH(std::rethrow_exception(*outcome), "pool range failed");
  }
  SECTION("the caller's own range throws while the pool's still run") {
    const auto finished = std::make_shared<std::atomic<int>>(0);
    const auto outcome = outcome_within(60, [finished] {
      cpu::parallel_rows(4, 1, [finished](int64_t begin, int64_t) {
        if (begin == 0) throw std::runtime_error("caller range failed");
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        ++*finished;
      });
    });
    REQUIRE(outcome.has_value());
    REQUIRE(*outcome != nullptr);
    CHECK_THROWS_WITH(std::rethrow_exception(*outcome), "caller range failed");
    CHECK(finished->load() == 1);  // before: the caller returned while the pool's range still ran
  }
}
