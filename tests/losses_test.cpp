// Loss values against the float64 oracle and against torch::nn::functional::cross_entropy.

#include "support/common.hpp"

using namespace testing;
namespace F = angular::functional;

namespace {

constexpr int64_t kBatch = 9, kClasses = 5, kDim = 4;

/// PyTorch's own cross-entropy of oracle logits, with the case's settings.
at::Tensor torch_cross_entropy(const oracle::Matrix& logits, const at::Tensor& y,
                               const CrossEntropyCase& c) {
  return torch::nn::functional::cross_entropy(
      oracle::to_tensor(logits), y, c.apply(torch::nn::functional::CrossEntropyFuncOptions()));
}

}  // namespace

TEST_CASE("the oracle's cross-entropy agrees with torch::nn::functional::cross_entropy",
          "[oracle]") {
  const at::Tensor z = uniform({kBatch, kClasses}, -3, 3, 1);
  const at::Tensor y = labels(kBatch, kClasses);
  for (const auto& c : cross_entropy_cases(kClasses)) {
    SECTION(c.name) {
      CHECK(close(oracle::cross_entropy(oracle::to_matrix(z), oracle::to_labels(y), c.oracle()),
                  torch_cross_entropy(oracle::to_matrix(z), y, c), 1e-12, 1e-12));
    }
  }
}

TEST_CASE("each loss is cross_entropy of its own float64 logits, for every reduction and setting",
          "[loss]") {
  const at::Tensor cos = uniform({kBatch, kClasses}, -1, 1, 2);
  const at::Tensor x = uniform({kBatch, kDim}, -2, 2, 3), w = uniform({kClasses, kDim}, -1, 1, 4);
  const at::Tensor centers = uniform({kClasses, kDim}, -1, 1, 5);
  const at::Tensor y = labels(kBatch, kClasses);
  const auto Y = oracle::to_labels(y);
  const auto X = oracle::to_matrix(x), W = oracle::to_matrix(w), COS = oracle::to_matrix(cos);
  for (const auto& c : cross_entropy_cases(kClasses)) {
    SECTION(c.name) {
      CHECK(close(F::arc_loss(cos, y, c.apply(F::ArcLossFuncOptions().k(4.0))),
                  torch_cross_entropy(oracle::arc_logits(COS, 4.0), y, c), 1e-10, 1e-12));
      CHECK(close(
          F::arcface_loss(cos, y, c.apply(F::ArcFaceLossFuncOptions().scale(16).margin(0.5))),
          torch_cross_entropy(oracle::arcface_logits(COS, Y, 16, 0.5, c.ignore_index), y, c),
          1e-10, 1e-12));
      CHECK(close(F::softmax_loss(x, w, y, c.apply(F::SoftmaxLossFuncOptions())),
                  torch_cross_entropy(oracle::linear(X, W), y, c), 1e-10, 1e-12));
      const auto o = c.oracle();
      const at::Tensor center_want =
          oracle::cross_entropy(oracle::linear(X, W), Y, o) +
          0.25 * oracle::center_term(X, oracle::to_matrix(centers), Y, o.reduction, c.ignore_index);
      CHECK(close(F::center_loss(x, w, centers, y, c.apply(F::CenterLossFuncOptions().lambda(0.25))),
                  center_want, 1e-10, 1e-12));
    }
  }
}

TEST_CASE("float32 losses match the float64 oracle", "[loss]") {
  const at::Tensor cos = uniform({kBatch, kClasses}, -1, 1, 6);
  const at::Tensor y = labels(kBatch, kClasses);
  const auto Y = oracle::to_labels(y);
  const oracle::CrossEntropy mean;
  const at::Tensor cos32 = cos.to(at::kFloat);
  const at::Tensor arc = F::arc_loss(cos32, y, F::ArcLossFuncOptions().k(3.5));
  CHECK(arc.scalar_type() == at::kFloat);
  CHECK(close(arc, oracle::cross_entropy(oracle::arc_logits(oracle::to_matrix(cos), 3.5), Y, mean),
              1e-5, 1e-6));
  CHECK(close(F::arcface_loss(cos32, y),  // defaults: s = 64, m = 0.5
              oracle::cross_entropy(oracle::arcface_logits(oracle::to_matrix(cos), Y, 64, 0.5), Y,
                                    mean),
              1e-5, 1e-5));
}

TEST_CASE("hand-computed values", "[loss]") {
  const at::Tensor y0 = at::zeros({1}, at::kLong);
  SECTION("orthogonal classes give zero Arc logits: loss = ln C for any k") {
    const at::Tensor cos = at::zeros({1, 4}, at::kDouble);
    CHECK(F::arc_loss(cos, y0, F::ArcLossFuncOptions().k(7.0)).item<double>() ==
          Approx(std::log(4.0)).epsilon(1e-12));
  }
  SECTION("default k puts p = 0.99 on a sample lying on its class, others orthogonal") {
    for (int64_t classes : {10, 100, 1000}) {
      at::Tensor cos = at::zeros({1, classes}, at::kDouble);
      cos[0][0] = 1.0;
      // Unclamped, loss = ln(1 + (C − 1)·e^{−kπ/2}) = −ln 0.99 exactly. θ is clamped to
      // θ0 = arccos(1 − 2⁻²³) ≈ 4.9e-4 rad, which moves the loss by a relative ~k·θ0.
      const double k = angular::default_arc_k(classes), theta0 = std::acos(1 - 0x1p-23);
      const double loss = F::arc_loss(cos, y0).item<double>();
      CHECK(loss == Approx(std::log1p((classes - 1) * std::exp(-k * (oracle::kPi / 2 - theta0))))
                        .epsilon(1e-9));
      CHECK(loss == Approx(-std::log(0.99)).epsilon(5e-3));
    }
    CHECK(angular::default_arc_k(10) == Approx(4.3245).epsilon(1e-4));
    CHECK(angular::default_arc_k(2) == 3.0);  // (2/π) ln 99 = 2.93 < 3
  }
  SECTION("ArcFace with m = 0 is softmax over s·cos") {
    const at::Tensor cos = at::tensor({0.3, -0.2, 0.9}, at::kDouble).view({1, 3});
    const double s = 8, want = std::log(std::exp(s * 0.3) + std::exp(-s * 0.2) + std::exp(s * 0.9)) -
                              s * 0.3;
    CHECK(F::arcface_loss(cos, y0, F::ArcFaceLossFuncOptions().scale(s).margin(0)).item<double>() ==
          Approx(want).epsilon(1e-12));
  }
  SECTION("ArcFace target past θ + m > π takes the continuation s·(c − m sin m)") {
    const double c = -0.95, m = 0.5, s = 2;  // θ = 2.82, θ + m = 3.32 > π
    const at::Tensor cos = at::tensor({c, 0.1}, at::kDouble).view({1, 2});
    const double target = s * (c - m * std::sin(m));
    const double want = std::log(std::exp(target) + std::exp(s * 0.1)) - target;
    CHECK(F::arcface_loss(cos, y0, F::ArcFaceLossFuncOptions().scale(s).margin(m)).item<double>() ==
          Approx(want).epsilon(1e-12));
  }
  SECTION("center loss: CE plus λ/2 of the squared distance") {
    const at::Tensor x = at::tensor({3.0, 4.0}, at::kDouble).view({1, 2});
    const at::Tensor w = at::zeros({2, 2}, at::kDouble), centers = at::zeros({2, 2}, at::kDouble);
    // zero logits: CE = ln 2; distance² = 25.
    CHECK(F::center_loss(x, w, centers, y0, F::CenterLossFuncOptions().lambda(0.1)).item<double>() ==
          Approx(std::log(2.0) + 0.1 * 12.5).epsilon(1e-12));
  }
}

TEST_CASE("empty batches follow PyTorch: none is empty, mean is NaN, sum is 0", "[loss]") {
  const at::Tensor cos = at::zeros({0, 3}), x = at::zeros({0, 2}), w = at::ones({3, 2});
  const at::Tensor y = at::zeros({0}, at::kLong);
  auto all = [&](angular::reduction_t r) {
    return std::vector<at::Tensor>{
        F::arc_loss(cos, y, F::ArcLossFuncOptions().reduction(r)),
        F::arcface_loss(cos, y, F::ArcFaceLossFuncOptions().reduction(r)),
        F::softmax_loss(x, w, y, F::SoftmaxLossFuncOptions().reduction(r)),
        F::center_loss(x, w, w, y, F::CenterLossFuncOptions().reduction(r))};
  };
  for (const auto& t : all(torch::kNone)) CHECK(t.sizes() == at::IntArrayRef{0});
  for (const auto& t : all(torch::kMean)) CHECK(std::isnan(t.item<double>()));
  for (const auto& t : all(torch::kSum)) CHECK(t.item<double>() == 0.0);
}

TEST_CASE("a single class (C = 1) gives zero loss", "[loss]") {
  const at::Tensor cos = uniform({4, 1}, -1, 1, 8);
  const at::Tensor y = at::zeros({4}, at::kLong);
  CHECK(F::arc_loss(cos, y).item<double>() == Approx(0).margin(1e-12));
  CHECK(F::arcface_loss(cos, y).item<double>() == Approx(0).margin(1e-12));
}

TEST_CASE("float16 and bfloat16 inputs give finite float32 losses close to float32 inputs",
          "[loss][dtype]") {
  const at::Tensor x = uniform({16, 8}, -1, 1, 9).to(at::kFloat);
  const at::Tensor y = labels(16, 6);
  for (auto dtype : {at::kHalf, at::kBFloat16}) {
    SECTION(c10::toString(dtype)) {
      const double tol = dtype == at::kHalf ? 5e-3 : 3e-2;
      torch::manual_seed(0);
      angular::ArcLoss arc(6, 8);
      angular::ArcFaceLoss arcface(angular::ArcFaceLossOptions(6, 8).scale(16));
      angular::SoftmaxLoss soft(6, 8);
      angular::CenterLoss center(6, 8);
      center->eval();  // keep the centers still between the two calls
      const std::vector<std::function<at::Tensor(const at::Tensor&)>> losses = {
          [&](const at::Tensor& f) { return arc(f, y); },
          [&](const at::Tensor& f) { return arcface(f, y); },
          [&](const at::Tensor& f) { return soft(f, y); },
          [&](const at::Tensor& f) { return center(f, y); }};
      for (const auto& loss : losses) {
        const at::Tensor low = x.to(dtype).requires_grad_(true);
        const at::Tensor got = loss(low);
        CHECK(got.scalar_type() == at::kFloat);
        CHECK(std::isfinite(got.item<double>()));
        CHECK(got.item<double>() == Approx(loss(x).item<double>()).epsilon(tol));
        got.backward();
        CHECK(low.grad().scalar_type() == dtype);
        CHECK(low.grad().isfinite().all().item<bool>());
      }
    }
  }
}
