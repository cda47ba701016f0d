// Gradients: finite differences in float64 through every loss, to features and class
// vectors, near cos = ±1 and on ArcFace's θ + m > π branch; Arc's constant angular gradient;
// second derivatives (refused by the fused path, the composite's inside CompositePathGuard).

#include "support/common.hpp"
#include "support/gradcheck.hpp"
#include "support/margins.hpp"

#include <optional>

using namespace testing;
namespace F = angular::functional;
using Inputs = std::vector<at::Tensor>;

namespace {

constexpr int64_t kGradientBatch = 5, kGradientClasses = 4, kGradientDim = 3;

/// Features placed at chosen cosines to the class vectors: row i of the result has cosine
/// `targets[i]` with class vector 0 of `w` = identity rows (kGradientClasses ≤ kGradientDim + 1 is not needed:
/// the other cosines follow from the geometry).
at::Tensor features_at_cosine(const std::vector<double>& cosines) {
  std::vector<double> flat;
  for (double c : cosines) {
    const double s = std::sqrt(std::max(0.0, 1 - c * c));
    flat.insert(flat.end(), {2 * c, 2 * s, 0.0});  // |x| = 2, angle arccos c to e0
  }
  return at::tensor(flat, at::kDouble).view({static_cast<int64_t>(cosines.size()), 3});
}

void require_gradcheck(const std::function<at::Tensor(const Inputs&)>& f, Inputs inputs) {
  const auto result = gradcheck(f, std::move(inputs));
  INFO(result.report);
  CHECK(result.checked > 0);
  CHECK(result.ok);
}

}  // namespace

TEST_CASE("gradcheck of every loss to features and class vectors", "[gradient]") {
  const at::Tensor x = uniform({kGradientBatch, kGradientDim}, -1, 1, 11), w = uniform({kGradientClasses, kGradientDim}, -1, 1, 12);
  const at::Tensor centers = uniform({kGradientClasses, kGradientDim}, -1, 1, 13);
  const at::Tensor y = labels(kGradientBatch, kGradientClasses);
  for (const auto& c : cross_entropy_cases(kGradientClasses)) {
    SECTION(c.name) {
      require_gradcheck(
          [&](const Inputs& in) {
            return F::arc_loss(angular::detail::cosine_matrix(in[0], in[1]), y,
                               c.apply(F::ArcLossFuncOptions().k(4.0)));
          },
          {x, w});
      require_gradcheck(
          [&](const Inputs& in) {
            return F::arcface_loss(angular::detail::cosine_matrix(in[0], in[1]), y,
                                   c.apply(F::ArcFaceLossFuncOptions().scale(8).margin(0.5)));
          },
          {x, w});
      require_gradcheck(
          [&](const Inputs& in) {
            return F::softmax_loss(in[0], in[1], y, c.apply(F::SoftmaxLossFuncOptions()));
          },
          {x, w});
      require_gradcheck(
          [&](const Inputs& in) {
            return F::center_loss(in[0], in[1], in[2], y,
                                  c.apply(F::CenterLossFuncOptions().lambda(0.3)));
          },
          {x, w, centers});
    }
  }
}

TEST_CASE("gradcheck within 1e-5 of cos = ±1 and on ArcFace's θ + m > π branch", "[gradient]") {
  // Class vectors: e0, −e0 and two others; features at cosines 1 − 5e-6, −1 + 5e-6 and −0.95
  // (θ = 2.82: with m = 0.5, θ + m > π) to e0.
  const at::Tensor w = at::tensor({1.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.3, 0.2, 0.9, 0.0, 1.0, 0.5},
                                  at::kDouble)
                           .view({4, 3});
  const at::Tensor x = features_at_cosine({1 - 5e-6, -1 + 5e-6, -0.95, 0.2});
  const at::Tensor y = at::tensor({0, 0, 0, 1}, at::kLong);
  const at::Tensor cos = angular::detail::cosine_matrix(x, w);
  REQUIRE(cos[0][0].item<double>() == Approx(1 - 5e-6).epsilon(1e-12));
  REQUIRE(cos[1][1].item<double>() == Approx(1 - 5e-6).epsilon(1e-12));
  REQUIRE(std::acos(cos[2][0].item<double>()) + 0.5 > oracle::kPi);
  require_gradcheck(
      [&](const Inputs& in) {
        return F::arc_loss(angular::detail::cosine_matrix(in[0], in[1]), y,
                           F::ArcLossFuncOptions().k(5.0).reduction(torch::kNone));
      },
      {x, w});
  require_gradcheck(
      [&](const Inputs& in) {
        return F::arcface_loss(angular::detail::cosine_matrix(in[0], in[1]), y,
                               F::ArcFaceLossFuncOptions().scale(4).margin(0.5).reduction(torch::kNone));
      },
      {x, w});
  SECTION("the continuation has slope s to the target cosine") {
    const at::Tensor c = cos.index({at::indexing::Slice(2, 3)}).clone().requires_grad_(true);
    const double s = 4;
    const at::Tensor loss = F::arcface_loss(c, y.index({at::indexing::Slice(2, 3)}),
                                            F::ArcFaceLossFuncOptions().scale(s).margin(0.5));
    loss.backward();
    // ∂L/∂c_y = (p_y − 1)·s with p from the logits [s(c0 − m sin m), s·c1, s·c2, s·c3].
    auto row = oracle::to_matrix(c.detach())[0];
    std::vector<double> z = {s * (row[0] - 0.5 * std::sin(0.5)), s * row[1], s * row[2], s * row[3]};
    double total = 0;
    for (double v : z) total += std::exp(v);
    CHECK(c.grad()[0][0].item<double>() == Approx((std::exp(z[0]) / total - 1) * s).epsilon(1e-10));
  }
}

TEST_CASE("Arc's angular gradient is k(1 − p_y), also as θ → 0", "[gradient]") {
  const double k = 6.0;
  for (double theta_target : {1.2, 0.3, 1e-2, 1e-3}) {
    // θ to the target and to three other classes.
    const at::Tensor theta =
        at::tensor({theta_target, 1.4, 1.6, 2.0}, at::kDouble).view({1, 4}).requires_grad_(true);
    const at::Tensor loss = F::arc_loss(at::cos(theta), at::zeros({1}, at::kLong),
                                        F::ArcLossFuncOptions().k(k).reduction(torch::kSum));
    loss.backward();
    double total = 0;
    std::vector<double> z;
    for (double t : {theta_target, 1.4, 1.6, 2.0}) z.push_back(k * (oracle::kPi / 2 - t));
    for (double v : z) total += std::exp(v);
    const double p = std::exp(z[0]) / total;
    INFO("theta = " << theta_target << ", p = " << p);
    CHECK(theta.grad()[0][0].item<double>() == Approx(k * (1 - p)).epsilon(1e-6));
  }
}

TEST_CASE("gradients are zero outside the arccos clamp, like the composite clamp", "[gradient]") {
  const at::Tensor cos = at::tensor({1.0, -1.0, 0.5}, at::kDouble).view({1, 3}).requires_grad_(true);
  F::arc_loss(cos, at::tensor({2}, at::kLong)).backward();
  CHECK(cos.grad()[0][0].item<double>() == 0.0);
  CHECK(cos.grad()[0][1].item<double>() == 0.0);
  CHECK(cos.grad()[0][2].item<double>() != 0.0);
}

TEST_CASE("second derivatives: refused by the fused path, the composite's inside CompositePathGuard",
          "[gradient]") {
  constexpr int64_t kRows = 6, kColumns = 9;
  const at::Tensor cos0 = uniform({kRows, kColumns}, -0.95, 0.95, 31);
  const at::Tensor y = labels(kRows, kColumns, 4);
  const at::Tensor direction = uniform({kRows, kColumns}, -1, 1, 32);
  std::vector<CrossEntropyCase> cases;  // scalar losses: mean, mean and sum with everything on
  for (const auto& c : cross_entropy_cases(kColumns))
    if (c.name == "mean" || c.name == "mean+all" || c.name == "sum+all") cases.push_back(c);
  REQUIRE(cases.size() == 3);
  for (const auto& margin : margins()) {
    if (!margin.params.exact_gradient) continue;  // not a derivative: nothing to differentiate again
    for (const auto& c : cases) {
      INFO(margin.name << " " << c.name);
      const at::Tensor cos = cos0.clone().requires_grad_(true);
      CHECK_ANGULAR_ERROR(torch::autograd::grad({margin.loss(cos, y, c)}, {cos}, {}, true, true),
                          "angular::CompositePathGuard");
      // H·v by double backward through the composite path...
      at::Tensor hessian_v;
      {
        angular::CompositePathGuard composite;
        CHECK(angular::kernel_path(cos) == angular::KernelPath::composite);
        const at::Tensor g = torch::autograd::grad({margin.loss(cos, y, c)}, {cos}, {}, true, true)[0];
        hessian_v = torch::autograd::grad({(g * direction).sum()}, {cos})[0];
      }
      CHECK(angular::kernel_path(cos) == angular::KernelPath::fused_cpu);
      // ...against central differences of the fused kernel's first derivative along v.
      const auto fused_gradient = [&](const at::Tensor& at_cos) {
        const at::Tensor x = at_cos.detach().requires_grad_(true);
        return torch::autograd::grad({margin.loss(x, y, c)}, {x})[0];
      };
      constexpr double eps = 1e-6;
      const at::Tensor numeric =
          (fused_gradient(cos0 + eps * direction) - fused_gradient(cos0 - eps * direction)) / (2 * eps);
      INFO("max |H v - numeric| " << (hessian_v - numeric).abs().max().item<double>());
      CHECK(close(hessian_v, numeric, 1e-4, 1e-6));
      CHECK(hessian_v.abs().max().item<double>() > 1e-3);  // a second derivative that is there
    }
  }
}

TEST_CASE("cosines on the arccos clamp's bounds and beyond pass no gradient, on both paths", "[gradient]") {
  // θ = arccos(clamp(c, −1 + ε, 1 − ε)) is constant for c ≤ −1 + ε and c ≥ 1 − ε: its
  // derivative there is 0 (the bounds included, whatever the LibTorch's clamp does at them).
  const double eps = angular::detail::kAcosEps;
  for (const auto dtype : {at::kFloat, at::kDouble}) {
    // Arc: every column goes through the clamp; ArcFace: the label's column.
    const at::Tensor cos0 = at::tensor({1 - eps, -1 + eps, 1.0, -1.0, 0.5}, at::kDouble).to(dtype).view({1, 5});
    for (const bool composite : {false, true}) {
      INFO(c10::toString(dtype) << (composite ? " composite" : " fused"));
      std::optional<angular::CompositePathGuard> guard;
      if (composite) guard.emplace();
      for (int64_t label = 0; label < 4; ++label) {
        const at::Tensor y = at::tensor({label}, at::kLong);
        const at::Tensor cos = cos0.clone().requires_grad_(true);
        F::arc_loss(cos, y, F::ArcLossFuncOptions().k(4.0)).backward();
        CHECK((cos.grad().narrow(1, 0, 4) == 0).all().item<bool>());
        CHECK(cos.grad()[0][4].item<double>() != 0);
        if (label == 1 || label == 3) continue;  // θ + m > π: the continuation c − m·sin m, slope 1
        const at::Tensor arcface_cos = cos0.clone().requires_grad_(true);
        F::arcface_loss(arcface_cos, y, F::ArcFaceLossFuncOptions().scale(4).margin(0.5)).backward();
        INFO("label " << label << ": ArcFace's gradient " << arcface_cos.grad());
        CHECK(arcface_cos.grad()[0][label].item<double>() == 0);
      }
    }
  }
}
