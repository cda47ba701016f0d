// The dispatcher operators (ops/angular_ops.cpp, target angular::ops) called from C++: the same
// losses and gradients as angular's C++ functions, through the ops' Autograd kernel.

#include <angular/loss.hpp>

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/torch.h>
#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace {

/// A margin's settings in the order of its options, as the operators take them.
at::Tensor settings_of(const std::vector<double>& values) { return at::tensor(values, at::kDouble); }

using LinearOp = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, c10::string_view,
                            const at::Tensor&, at::TensorList, const std::optional<at::Tensor>&, int64_t, int64_t,
                            double, int64_t);
using CosineOp = at::Tensor(const at::Tensor&, const std::optional<at::Tensor>&, const at::Tensor&, c10::string_view,
                            const at::Tensor&, at::TensorList, const std::optional<at::Tensor>&, int64_t, int64_t,
                            double);

at::Tensor linear_op(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& target,
                     const std::string& margin, const at::Tensor& settings, int64_t reduction,
                     at::TensorList statistics = {}) {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("angular::linear_margin_cross_entropy", "").typed<LinearOp>();
  return op.call(features, weight, target, margin, settings, statistics, std::nullopt, reduction, -100, 0.0, 0);
}

at::Tensor cosine_op(const at::Tensor& cos, const std::optional<at::Tensor>& norms, const at::Tensor& target,
                     const std::string& margin, const at::Tensor& settings, int64_t reduction,
                     at::TensorList statistics = {}) {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("angular::margin_cross_entropy", "").typed<CosineOp>();
  return op.call(cos, norms, target, margin, settings, statistics, std::nullopt, reduction, -100, 0.0);
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
    const auto got = linear_op(x, w, target, "arcface", settings_of({12, 0.3, 1, 1}), reduction);
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
  const auto got = cosine_op(cos, norms, target, "sphereface", settings_of({3, 0.5}), at::Reduction::Mean);
  REQUIRE(torch::equal(got, want));
  const auto one = torch::ones_like(want);
  const auto g_want = gradients(want, {cos, norms}, one), g_got = gradients(got, {cos, norms}, one);
  CHECK(torch::equal(g_got[0], g_want[0]));
  CHECK(torch::equal(g_got[1], g_want[1]));
}

TEST_CASE("the operators refuse an unknown margin and a wrong number of settings", "[ops]") {
  const auto cos = torch::rand({2, 3});
  const auto target = torch::zeros({2}, torch::kLong);
  CHECK_THROWS_WITH(cosine_op(cos, std::nullopt, target, "bogus", settings_of({}), 1),
                    Catch::Contains("unknown margin 'bogus'") && Catch::Contains("arcface"));
  CHECK_THROWS_WITH(cosine_op(cos, std::nullopt, target, "cosface", settings_of({2}), 1),
                    Catch::Contains("the cosface loss has 2 settings, got 1 values"));
  CHECK_THROWS_WITH(cosine_op(cos, std::nullopt, target, "soft", settings_of({}), 1), Catch::Contains("no loss over cosines"));
}

namespace {

/// The default settings of a margin's functional options, as the operators take them.
template <class FuncOptions>
at::Tensor default_settings() {
  std::vector<double> values;
  FuncOptions().for_each_setting([&](const char*, const auto& value) {
    using T = std::decay_t<decltype(value)>;
    if constexpr (std::is_same_v<T, std::optional<double>>) values.push_back(value.value_or(NAN));
    else values.push_back(static_cast<double>(value));
  });
  return at::tensor(values, at::kDouble);
}

/// Its running statistics at their starting values.
template <class Traits>
std::vector<at::Tensor> starting_statistics() {
  std::vector<at::Tensor> statistics;
  for (const auto& s : Traits::kStatistics) statistics.push_back(torch::full({1}, s.start));
  return statistics;
}

}  // namespace

TEST_CASE("a second derivative through any loss is refused with angular's message, in every face", "[ops]") {
  torch::manual_seed(8);
  const auto target = torch::randint(0, 5, {6}, torch::kLong);
  int margins = 0;
  angular::for_each_margin_module([&](auto tag) {
    using Module = typename decltype(tag)::type;
    using FuncOptions = typename Module::FuncOptions;
    using Traits = angular::detail::MarginTraits<FuncOptions>;
    INFO(Traits::kName);
    ++margins;
    const int64_t rows = 5 * Traits::sub_centers(FuncOptions());
    const auto x = torch::randn({6, 4}, torch::requires_grad());
    const auto w = torch::randn({rows, 4}, torch::requires_grad());
    const auto statistics = starting_statistics<Traits>();
    const auto second = [&](const at::Tensor& loss) { return torch::autograd::grad({loss}, {x}, {}, true, true); };
    // The operator over features, the C++ function and the C++ module.
    const auto op_loss = linear_op(x, w, target, Traits::kName, default_settings<FuncOptions>(), 1, statistics);
    CHECK_THROWS_WITH(second(op_loss), Catch::Contains("angular: the fused margin losses are differentiable once"));
    Module module(5, 4);
    CHECK_THROWS_WITH(second(module.forward(x, target)), Catch::Contains("differentiable once"));
    if constexpr (Traits::kNormalized) {  // the operator over cosines
      const auto cos = (torch::rand({6, rows}) * 1.8 - 0.9).requires_grad_();
      const bool reads_norms = Traits::kRowInput == angular::detail::RowInput::norms ||
                               Traits::kRowInput == angular::detail::RowInput::norm_statistics;
      const std::optional<at::Tensor> norms =
          reads_norms ? std::optional<at::Tensor>(torch::rand({6}) + 1) : std::nullopt;
      const auto loss = cosine_op(cos, norms, target, Traits::kName, default_settings<FuncOptions>(), 2, statistics);
      CHECK_THROWS_WITH(torch::autograd::grad({loss}, {cos}, {}, true, true), Catch::Contains("differentiable once"));
    }
  });
  CHECK(margins == 10);
}
