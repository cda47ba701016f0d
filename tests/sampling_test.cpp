// Class sampling (sample_rate < 1) of the features-level losses and modules in one process:
// the loss is the float64 composite over the kept classes alone (taken from the option's own
// record and checked against the zero pattern of ∂W), positives are always kept, the count is
// max(positives, ceil(rate·C)), and one seed draws one set.

#include "support/linear.hpp"

#include <angular/optim.hpp>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

using namespace testing;

namespace {

/// The record's properties: the positives of `y` first, then distinct other classes, each
/// ascending, max(positives, ceil(rate·C)) in all.
void check_record(const at::Tensor& kept, const at::Tensor& y, int64_t ignore_index, int64_t classes, double rate) {
  const at::Tensor positives = std::get<0>(at::_unique(y.masked_select(y != ignore_index), true));
  const int64_t p = positives.numel();
  CHECK(kept.numel() == std::max<int64_t>(p, static_cast<int64_t>(std::ceil(rate * classes))));
  CHECK(kept.narrow(0, 0, p).equal(positives));
  const at::Tensor drawn = kept.narrow(0, p, kept.numel() - p);
  CHECK(drawn.equal(std::get<0>(drawn.sort())));
  CHECK(std::get<0>(at::_unique(kept, true)).numel() == kept.numel());
  CHECK((kept.numel() == 0 || (kept.min().item<int64_t>() >= 0 && kept.max().item<int64_t>() < classes)));
}

/// `y` as indices among the kept classes; ignored rows get -100.
at::Tensor kept_labels(const at::Tensor& y, const at::Tensor& kept, int64_t ignore_index, int64_t classes) {
  at::Tensor place = at::full({classes}, -1, at::kLong);
  place.index_copy_(0, kept, at::arange(kept.numel()));
  return at::where(y != ignore_index, place.index_select(0, y.clamp(0, classes - 1)), -100);
}

}  // namespace

TEST_CASE("sampled features-level losses equal the float64 composite over the kept classes", "[linear][sampling]") {
  const int64_t batch = 9, classes = 23, dim = 6;
  const at::Tensor x = uniform({batch, dim}, -1, 1, 1).to(at::kFloat);
  const at::Tensor w = uniform({classes, dim}, -1, 1, 2).to(at::kFloat);
  const at::Tensor y = labels(batch, classes);
  for (const auto& loss : losses()) {
    for (const auto& ce : cross_entropy_cases(classes)) {
      for (const double rate : {0.2, 0.5}) {
        INFO(loss.name << " " << ce.name << " sample_rate " << rate);
        CrossEntropyCase sampled = ce;
        sampled.sample_rate = rate;
        sampled.generator = at::make_generator<at::CPUGeneratorImpl>(42);
        sampled.sampled_classes = at::empty({0}, at::kLong);
        const LossAndGradients got = evaluate(loss.fused, x, w, y, sampled, 0);
        const at::Tensor kept = sampled.sampled_classes.clone();
        check_record(kept, y, ce.ignore_index, classes, rate);

        // ∂W: the kept classes' rows and no other.
        const at::Tensor moved = (got.grad_weight.abs().sum(1) != 0).nonzero().select(1, 0);
        CHECK(moved.equal(std::get<0>(kept.sort())));

        CrossEntropyCase over_kept = ce;
        over_kept.ignore_index = -100;
        if (ce.class_weight.defined()) over_kept.class_weight = ce.class_weight.index_select(0, kept);
        const LossAndGradients want =
            reference(loss, x, w.index_select(0, kept), kept_labels(y, kept, ce.ignore_index, classes), over_kept);
        at::Tensor want_grad_weight = at::zeros({classes, dim}, at::kDouble);
        want_grad_weight.index_copy_(0, kept, want.grad_weight);
        CHECK(near(got.loss, want.loss, 2e-5, 1e-6));
        CHECK(near(got.grad_features, want.grad_features, 2e-5, 1e-6));
        CHECK(near(got.grad_weight, want_grad_weight, 2e-5, 1e-6));

        // One seed, one draw: bitwise the same again.
        sampled.generator = at::make_generator<at::CPUGeneratorImpl>(42);
        const LossAndGradients again = evaluate(loss.fused, x, w, y, sampled, 0);
        CHECK(again.loss.equal(got.loss));
        CHECK(again.grad_weight.equal(got.grad_weight));
        CHECK(sampled.sampled_classes.equal(kept));
      }
    }
  }
}

TEST_CASE("sampling keeps ceil(rate·C) classes at C = 1 and B = 0, and every positive at a low rate",
          "[linear][sampling]") {
  const auto run = [](int64_t batch, int64_t classes, double rate) {
    const at::Tensor x = uniform({batch, 4}, -1, 1, 5).to(at::kFloat);
    const at::Tensor w = uniform({classes, 4}, -1, 1, 6).to(at::kFloat).requires_grad_();
    const at::Tensor y = labels(batch, classes);
    at::Tensor record = at::empty({0}, at::kLong);
    const at::Tensor loss = F::linear_arcface_loss(
        x, w, y, F::ArcFaceLossFuncOptions().reduction(torch::kSum).sample_rate(rate).sampled_classes(record));
    loss.backward();
    check_record(record, y, -100, classes, rate);
    return record.numel();
  };
  CHECK(run(5, 1, 0.5) == 1);
  CHECK(run(0, 9, 0.5) == 5);
  CHECK(run(40, 50, 0.01) >= 10);  // 40 labels of 50 classes: the positives exceed ceil(0.5)
}

TEST_CASE("modules sample their classes in training mode only", "[linear][sampling][module]") {
  torch::manual_seed(3);
  at::Tensor record = at::empty({0}, at::kLong);
  angular::ArcFaceLoss module(angular::ArcFaceLossOptions(30, 8)
                                  .scale(16)
                                  .sample_rate(0.3)
                                  .generator(at::make_generator<at::CPUGeneratorImpl>(1))
                                  .sampled_classes(record));
  const at::Tensor x = uniform({6, 8}, -1, 1, 7).to(at::kFloat);
  const at::Tensor y = labels(6, 30);
  module->forward(x, y).backward();
  check_record(record, y, -100, 30, 0.3);
  const at::Tensor moved = (module->weight.grad().abs().sum(1) != 0).nonzero().select(1, 0);
  CHECK(moved.equal(std::get<0>(record.sort())));

  module->eval();
  const at::Tensor kept_before = record.clone();
  const at::Tensor all_classes =
      F::linear_arcface_loss(x, module->weight, y, F::ArcFaceLossFuncOptions().scale(16));
  CHECK(module->forward(x, y).equal(all_classes));
  CHECK(record.equal(kept_before));
}

TEST_CASE("bad sampling settings are errors that name them", "[linear][sampling][errors]") {
  const at::Tensor x = uniform({4, 3}, -1, 1, 8).to(at::kFloat), w = uniform({5, 3}, -1, 1, 9).to(at::kFloat);
  const at::Tensor y = labels(4, 5);
  for (const double rate : {0.0, -0.5, 1.5})
    CHECK_THROWS_WITH(F::linear_cosface_loss(x, w, y, F::CosFaceLossFuncOptions().sample_rate(rate)),
                      Catch::Contains("sample_rate"));
  CHECK_THROWS_WITH(
      F::linear_cosface_loss(x, w, y, F::CosFaceLossFuncOptions().sample_rate(0.5).sampled_classes(at::empty({0}))),
      Catch::Contains("sampled_classes") && Catch::Contains("int64"));
  CHECK_THROWS_WITH(F::cosface_loss(angular::detail::cosine_matrix(x, w), y, F::CosFaceLossFuncOptions().sample_rate(0.5)),
                    Catch::Contains("sample_rate") && Catch::Contains("features-level"));
  CHECK_THROWS_WITH(angular::CosFaceLoss(angular::CosFaceLossOptions(5, 3).sample_rate(2)), Catch::Contains("sample_rate"));
}

TEST_CASE("sgd_step_kept_ is torch::optim::SGD on the kept rows and leaves the others", "[sampling][optim]") {
  torch::manual_seed(4);
  const int64_t classes = 12, K = 2, dim = 5;
  const at::Tensor kept = at::tensor({7, 2, 9}, at::kLong);
  const at::Tensor rows = (kept.unsqueeze(1) * K + at::arange(K)).flatten();
  for (const bool nesterov : {false, true}) {
    const auto options = torch::optim::SGDOptions(0.1).momentum(0.9).weight_decay(0.01).nesterov(nesterov);
    at::Tensor weight = torch::randn({classes * K, dim}).requires_grad_();
    at::Tensor buffer = at::zeros_like(weight);
    const at::Tensor before = weight.detach().clone();
    // The oracle: torch's SGD on a parameter of the kept rows alone.
    at::Tensor kept_weight = weight.detach().index_select(0, rows).requires_grad_();
    torch::optim::SGD oracle({kept_weight}, options);
    for (int step = 0; step < 3; ++step) {
      const at::Tensor grad = torch::randn({classes * K, dim});
      weight.mutable_grad() = grad.clone();
      angular::optim::sgd_step_kept_(weight, buffer, kept, K, options);
      kept_weight.mutable_grad() = grad.index_select(0, rows);
      oracle.step();
    }
    CHECK(torch::allclose(weight.detach().index_select(0, rows), kept_weight.detach(), 1e-6, 1e-7));
    at::Tensor untouched = at::ones({classes * K}, at::kBool);
    untouched.index_fill_(0, rows, false);
    CHECK(weight.detach().index({untouched}).equal(before.index({untouched})));
    CHECK(buffer.index({untouched}).abs().max().item<double>() == 0);
  }
  at::Tensor weight = torch::randn({4, 3}).requires_grad_();
  CHECK_THROWS_WITH(angular::optim::sgd_step_kept_(weight, {}, kept, 1, torch::optim::SGDOptions(0.1)),
                    Catch::Contains("no gradient"));
}
