// The dispatcher operators (ops/angular_ops.cpp, target angular::ops) called from C++: the same
// losses and gradients as angular's C++ functions, through the ops' Autograd kernel.

#include <angular/loss.hpp>

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/torch.h>
#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace {

using Settings = std::vector<std::pair<std::string, double>>;

c10::List<std::string> names_of(const Settings& settings) {
  c10::List<std::string> names;
  for (const auto& [name, value] : settings) names.push_back(name);
  return names;
}

std::vector<double> values_of(const Settings& settings) {
  std::vector<double> values;
  for (const auto& [name, value] : settings) values.push_back(value);
  return values;
}

at::Tensor linear_op(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& target,
                     const std::string& margin, const Settings& settings, int64_t reduction) {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("angular::linear_margin_cross_entropy", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, c10::string_view,
                            const c10::List<std::string>&, c10::ArrayRef<double>, at::TensorList,
                            const std::optional<at::Tensor>&, int64_t, int64_t, double, int64_t)>();
  return op.call(features, weight, target, margin, names_of(settings), values_of(settings), {}, std::nullopt, reduction,
                 -100, 0.0, 0);
}

at::Tensor cosine_op(const at::Tensor& cos, const std::optional<at::Tensor>& norms, const at::Tensor& target,
                     const std::string& margin, const Settings& settings, int64_t reduction) {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("angular::margin_cross_entropy", "")
          .typed<at::Tensor(const at::Tensor&, const std::optional<at::Tensor>&, const at::Tensor&, c10::string_view,
                            const c10::List<std::string>&, c10::ArrayRef<double>, at::TensorList,
                            const std::optional<at::Tensor>&, int64_t, int64_t, double)>();
  return op.call(cos, norms, target, margin, names_of(settings), values_of(settings), {}, std::nullopt, reduction, -100,
                 0.0);
}

std::vector<at::Tensor> gradients(const at::Tensor& loss, const std::vector<at::Tensor>& inputs,
                                  const at::Tensor& upstream) {
  return torch::autograd::grad({loss}, inputs, {upstream});
}

}  // namespace

TEST_CASE("the features-level operator gives the C++ function's loss and gradients", "[ops]") {
  torch::manual_seed(5);
  const auto x = torch::randn({9, 6}, torch::requires_grad());
  const auto w = torch::randn({7, 6}, torch::requires_grad());
  auto target = torch::randint(0, 7, {9}, torch::kLong);
  target[3] = -100;
  for (const int64_t reduction : {at::Reduction::None, at::Reduction::Mean, at::Reduction::Sum}) {
    CAPTURE(reduction);
    const auto options = angular::functional::ArcFaceLossFuncOptions().scale(12).margin(0.3).reduction(
        reduction == at::Reduction::None   ? angular::reduction_t(torch::kNone)
        : reduction == at::Reduction::Mean ? angular::reduction_t(torch::kMean)
                                           : angular::reduction_t(torch::kSum));
    const auto want = angular::functional::linear_arcface_loss(x, w, target, options);
    const auto got = linear_op(x, w, target, "arcface", {{"scale", 12}, {"margin", 0.3}}, reduction);
    REQUIRE(torch::equal(got, want));
    const auto upstream = torch::rand_like(want);
    const auto g_want = gradients(want, {x, w}, upstream);
    const auto g_got = gradients(got, {x, w}, upstream);
    // Per-sample losses: the backward operator recomputes; reduced: the forward's gradients times
    // the upstream, as the C++ function's.
    CHECK(torch::allclose(g_got[0], g_want[0], 1e-6, 1e-7));
    CHECK(torch::allclose(g_got[1], g_want[1], 1e-6, 1e-7));
  }
}

TEST_CASE("the cosine operator passes SphereFace's gradient to the norms", "[ops]") {
  torch::manual_seed(6);
  const auto cos = (torch::rand({8, 5}, torch::kDouble) * 2 - 1).requires_grad_();
  const auto norms = (torch::rand({8}, torch::kDouble) + 0.5).requires_grad_();
  const auto target = torch::randint(0, 5, {8}, torch::kLong);
  const auto options = angular::functional::SphereFaceLossFuncOptions().margin(3).lambda(0.5);
  const auto want = angular::functional::sphereface_loss(cos, norms, target, options);
  const auto got = cosine_op(cos, norms, target, "sphereface", {{"margin", 3}, {"lambda", 0.5}}, at::Reduction::Mean);
  REQUIRE(torch::equal(got, want));
  const auto one = torch::ones_like(want);
  const auto g_want = gradients(want, {cos, norms}, one), g_got = gradients(got, {cos, norms}, one);
  CHECK(torch::equal(g_got[0], g_want[0]));
  CHECK(torch::equal(g_got[1], g_want[1]));
}

TEST_CASE("the operators refuse an unknown margin and setting by name", "[ops]") {
  const auto cos = torch::rand({2, 3});
  const auto target = torch::zeros({2}, torch::kLong);
  CHECK_THROWS_WITH(cosine_op(cos, std::nullopt, target, "bogus", {}, 1),
                    Catch::Contains("unknown margin 'bogus'") && Catch::Contains("arcface"));
  CHECK_THROWS_WITH(cosine_op(cos, std::nullopt, target, "cosface", {{"k", 2}}, 1),
                    Catch::Contains("the cosface margin has no setting 'k'"));
  CHECK_THROWS_WITH(cosine_op(cos, std::nullopt, target, "soft", {}, 1), Catch::Contains("no loss over cosines"));
}
