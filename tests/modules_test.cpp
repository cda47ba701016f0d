// Modules: forward and logits against the functional layer and the oracle, the center
// update rule, training/eval behaviour, save/load and clone.

#include "support/common.hpp"

#include <cstdio>
#include <filesystem>

using namespace testing;
namespace F = angular::functional;

namespace {

constexpr int64_t kModuleClasses = 5, kModuleDim = 6, kModuleBatch = 12;

std::string temp_path(const char* name) {
  return (std::filesystem::temp_directory_path() / (std::string("angular-") + name)).string();
}

}  // namespace

TEST_CASE("module forward equals the oracle on its own class vectors", "[module]") {
  torch::manual_seed(1);
  const at::Tensor x = uniform({kModuleBatch, kModuleDim}, -1, 1, 21).to(at::kFloat);
  const at::Tensor y = labels(kModuleBatch, kModuleClasses);
  const auto X = oracle::to_matrix(x);
  const auto Y = oracle::to_labels(y);
  const oracle::CrossEntropy mean;

  angular::ArcLoss arc(angular::ArcLossOptions(kModuleClasses, kModuleDim).k(5.0));
  const auto cos = oracle::cosines(X, oracle::to_matrix(arc->weight));
  CHECK(close(arc(x, y), oracle::cross_entropy(oracle::arc_logits(cos, 5.0), Y, mean), 1e-5, 1e-6));

  angular::ArcFaceLoss arcface(angular::ArcFaceLossOptions(kModuleClasses, kModuleDim).scale(10).margin(0.3));
  const auto cos_f = oracle::cosines(X, oracle::to_matrix(arcface->weight));
  CHECK(close(arcface(x, y),
              oracle::cross_entropy(oracle::arcface_logits(cos_f, Y, 10, 0.3), Y, mean), 1e-5, 1e-6));

  angular::SoftmaxLoss soft(kModuleClasses, kModuleDim);
  const auto z = oracle::linear(X, oracle::to_matrix(soft->weight));
  CHECK(close(soft(x, y), oracle::cross_entropy(z, Y, mean), 1e-5, 1e-6));
  CHECK(close(soft->logits(x), oracle::to_tensor(z), 1e-5, 1e-6));
}

TEST_CASE("logits give the class with the smallest angle", "[module]") {
  angular::ArcLoss arc(3, 2);
  arc->weight.data().copy_(at::tensor({1.0f, 0.0f, 0.0f, 1.0f, -1.0f, 0.0f}).view({3, 2}));
  const at::Tensor x = at::tensor({5.0f, 0.5f, 0.1f, 3.0f, -2.0f, -0.3f}).view({3, 2});
  const at::Tensor logits = arc->logits(x);
  CHECK(logits.sizes() == at::IntArrayRef{3, 3});
  CHECK(at::equal(logits.argmax(1), at::tensor({0, 1, 2}, at::kLong)));
  angular::ArcFaceLoss arcface(3, 2);
  arcface->weight.data().copy_(arc->weight);
  CHECK(at::equal(arcface->logits(x).argmax(1), at::tensor({0, 1, 2}, at::kLong)));
}

TEST_CASE("the alpha rule moves centers as Wen et al. write it, in training mode only",
          "[module][center]") {
  angular::CenterLoss center(angular::CenterLossOptions(3, 2).alpha(0.5).ignore_index(-1));
  center->centers.copy_(at::tensor({1.0f, 1.0f, -1.0f, 0.0f, 0.0f, 2.0f}).view({3, 2}));
  const at::Tensor before = center->centers.clone();
  const at::Tensor x = at::tensor({3.0f, 1.0f, 1.0f, 3.0f, 0.0f, 0.0f, 9.0f, 9.0f}).view({4, 2});
  const at::Tensor y = at::tensor({0, 0, 1, -1}, at::kLong);  // the last sample is ignored

  center->eval();
  center(x, y);
  CHECK(at::equal(center->centers, before));

  center->train();
  const at::Tensor loss = center(x, y);
  // Class 0: n = 2, Δ = ((1,1) − (3,1) + (1,1) − (1,3)) / 3 = (−2, −2)/3; c ← c − 0.5 Δ.
  // Class 1: n = 1, Δ = ((−1,0) − (0,0)) / 2 = (−0.5, 0); class 2: no sample, unchanged.
  const at::Tensor want =
      at::tensor({1.0f + 1.0f / 3, 1.0f + 1.0f / 3, -0.75f, 0.0f, 0.0f, 2.0f}).view({3, 2});
  CHECK(close(center->centers, want, 1e-6, 1e-6));
  // The loss used the centers from before the update.
  CHECK(close(loss, F::center_loss(x, center->weight, before, y,
                                   F::CenterLossFuncOptions().ignore_index(-1)),
              1e-6, 1e-7));
  CHECK_FALSE(center->centers.requires_grad());
  CHECK(center->named_buffers().contains("centers"));

  // A label out of range is an error before anything moves: the update relies on the loss's check.
  const at::Tensor moved = center->centers.clone();
  CHECK_ANGULAR_ERROR(center(x, at::tensor({0, 3, 1, 2}, at::kLong)), "target[1] = 3 is out of range");
  CHECK(at::equal(center->centers, moved));
}

TEST_CASE("CenterUpdate::sgd makes the centers a trained Parameter", "[module][center]") {
  angular::CenterLoss center(angular::CenterLossOptions(3, 2).update(angular::CenterUpdate::sgd).lambda(1));
  CHECK(center->named_parameters().contains("centers"));
  const at::Tensor x = at::tensor({3.0f, 1.0f}).view({1, 2});
  center(x, at::zeros({1}, at::kLong)).backward();
  // ∂/∂c_0 of λ·½‖x − c_0‖² = −(x − c_0) with c_0 = 0.
  CHECK(close(center->centers.grad()[0], -x[0], 1e-6, 1e-7));
  CHECK(center->centers.grad()[1].abs().sum().item<float>() == 0.0f);
}

TEST_CASE("save and load keep W, the centers and the class weights", "[module][serialize]") {
  const std::string path = temp_path("center.pt");
  angular::CenterLoss saved(angular::CenterLossOptions(4, 3).weight(at::tensor({1.0f, 2.0f, 3.0f, 4.0f})));
  saved->centers.normal_();
  torch::save(saved, path);
  angular::CenterLoss loaded(angular::CenterLossOptions(4, 3).weight(at::ones({4})));
  torch::load(loaded, path);
  std::remove(path.c_str());
  CHECK(at::equal(loaded->weight, saved->weight));
  CHECK(at::equal(loaded->centers, saved->centers));
  CHECK(at::equal(loaded->class_weight, saved->class_weight));

  const std::string arc_path = temp_path("arc.pt");
  angular::ArcLoss arc(4, 3), arc_loaded(4, 3);
  torch::save(arc, arc_path);
  torch::load(arc_loaded, arc_path);
  std::remove(arc_path.c_str());
  CHECK(at::equal(arc_loaded->weight, arc->weight));
}

TEST_CASE("clone() and to(kDouble) keep working", "[module]") {
  angular::ArcFaceLoss loss(4, 3);
  auto copy = std::dynamic_pointer_cast<angular::ArcFaceLossImpl>(loss->clone());
  REQUIRE(copy);
  CHECK(at::equal(copy->weight, loss->weight));
  CHECK(copy->weight.data_ptr() != loss->weight.data_ptr());
  loss->to(at::kDouble);
  CHECK(loss->weight.scalar_type() == at::kDouble);
  const at::Tensor out = loss(at::rand({2, 3}, at::kDouble), at::tensor({0, 3}, at::kLong));
  CHECK(out.scalar_type() == at::kDouble);
  std::ostringstream printed;
  printed << *loss;
  CHECK(printed.str() == "angular::ArcFaceLoss(num_classes=4, embedding_dim=3, scale=64, margin=0.5, exact_gradient=true, "
                        "continuation=true)");
}
