// Every bad input raises c10::Error with a message naming the argument and its value.

#include "support/common.hpp"

namespace F = angular::functional;

TEST_CASE("bad tensors are named in the error", "[errors]") {
  const at::Tensor cos = at::rand({4, 3}), x = at::rand({4, 2}), w = at::rand({3, 2});
  const at::Tensor y = at::tensor({0, 1, 2, 0}, at::kLong);

  SECTION("ranks and sizes") {
    CHECK_ANGULAR_ERROR(F::arc_loss(at::rand({4}), y), "cos must be 2-D");
    CHECK_ANGULAR_ERROR(F::arcface_loss(at::rand({4, 3, 1}), y), "cos must be 2-D");
    CHECK_ANGULAR_ERROR(F::arc_loss(at::rand({4, 0}), y), "cos must have at least one class");
    CHECK_ANGULAR_ERROR(F::softmax_loss(at::rand({4, 5}), w, y), "features must be [B, 2]");
    CHECK_ANGULAR_ERROR(F::softmax_loss(x, at::rand({3}), y), "weight must be 2-D");
    CHECK_ANGULAR_ERROR(F::center_loss(x, w, at::rand({2, 2}), y), "centers must be [3, 2]");
    CHECK_ANGULAR_ERROR(F::arc_loss(cos, at::tensor({0, 1}, at::kLong)), "target must be [4]");
    angular::ArcLoss arc(3, 2);
    CHECK_ANGULAR_ERROR(arc(at::rand({4, 7}), y), "features must be [B, 2]");
    CHECK_ANGULAR_ERROR(arc(at::rand({4}), y), "features must be 2-D");
  }
  SECTION("dtypes") {
    CHECK_ANGULAR_ERROR(F::arc_loss(at::ones({4, 3}, at::kLong), y), "cos must be a floating-point");
    CHECK_ANGULAR_ERROR(F::softmax_loss(at::ones({4, 2}, at::kInt), w, y),
                        "features must be a floating-point tensor, got Int");
    CHECK_ANGULAR_ERROR(F::arc_loss(cos, y.to(at::kInt)), "target must be int64");
    CHECK_ANGULAR_ERROR(F::arc_loss(cos, y, F::ArcLossFuncOptions().weight(at::ones({3}, at::kLong))),
                        "weight (class weights) must be floating-point");
  }
  SECTION("labels out of range name the position and the value") {
    CHECK_ANGULAR_ERROR(F::arc_loss(cos, at::tensor({0, 1, 3, 0}, at::kLong)),
                        "target[2] = 3 is out of range [0, 3)");
    CHECK_ANGULAR_ERROR(F::arcface_loss(cos, at::tensor({0, -1, 2, 0}, at::kLong)),
                        "target[1] = -1 is out of range");
    CHECK_ANGULAR_ERROR(F::center_loss(x, w, w, at::tensor({0, 1, 2, 9}, at::kLong)),
                        "target[3] = 9");
    CHECK_NOTHROW(F::arc_loss(cos, at::tensor({0, -100, 2, 0}, at::kLong)));
  }
  SECTION("devices must agree") {
    const at::Tensor meta = at::empty({3, 2}, at::TensorOptions().device(at::kMeta));
    CHECK_ANGULAR_ERROR(F::softmax_loss(x, meta, y), "weight is on meta but features is on cpu");
    CHECK_ANGULAR_ERROR(F::arc_loss(cos.to(at::kMeta), y), "target is on cpu but cos is on meta");
  }
  SECTION("class weights") {
    CHECK_ANGULAR_ERROR(F::arc_loss(cos, y, F::ArcLossFuncOptions().weight(at::ones({2}))),
                        "weight (class weights) must be [3]");
    CHECK_ANGULAR_ERROR(angular::ArcLoss(angular::ArcLossOptions(3, 2).weight(at::ones({4}))),
                        "weight (class weights) must be [3]");
  }
}

TEST_CASE("bad hyper-parameters are named with their value", "[errors]") {
  const at::Tensor cos = at::rand({4, 3}), x = at::rand({4, 2}), w = at::rand({3, 2});
  const at::Tensor y = at::tensor({0, 1, 2, 0}, at::kLong);
  const double nan = std::nan(""), inf = INFINITY;

  for (double k : {0.0, -1.0, nan, inf}) {
    CHECK_ANGULAR_ERROR(F::arc_loss(cos, y, F::ArcLossFuncOptions().k(k)), "k must be a finite number > 0");
    CHECK_ANGULAR_ERROR(angular::ArcLoss(angular::ArcLossOptions(3, 2).k(k)), "k must be");
  }
  CHECK_ANGULAR_ERROR(F::arc_loss(cos, y, F::ArcLossFuncOptions().k(-2.5)), "got -2.5");
  for (double s : {0.0, -64.0, nan, inf}) {
    CHECK_ANGULAR_ERROR(F::arcface_loss(cos, y, F::ArcFaceLossFuncOptions().scale(s)), "scale must be");
    CHECK_ANGULAR_ERROR(angular::ArcFaceLoss(angular::ArcFaceLossOptions(3, 2).scale(s)), "scale");
  }
  for (double m : {-0.1, oracle::kPi, 4.0, nan}) {
    CHECK_ANGULAR_ERROR(F::arcface_loss(cos, y, F::ArcFaceLossFuncOptions().margin(m)),
                        "margin must be in [0, pi)");
    CHECK_ANGULAR_ERROR(angular::ArcFaceLoss(angular::ArcFaceLossOptions(3, 2).margin(m)), "margin");
  }
  for (double lambda : {-0.001, nan, inf}) {
    CHECK_ANGULAR_ERROR(F::center_loss(x, w, w, y, F::CenterLossFuncOptions().lambda(lambda)),
                        "lambda must be a finite number >= 0");
    CHECK_ANGULAR_ERROR(angular::CenterLoss(angular::CenterLossOptions(3, 2).lambda(lambda)), "lambda");
  }
  for (double alpha : {0.0, -0.5, 1.5, nan}) {
    CHECK_ANGULAR_ERROR(angular::CenterLoss(angular::CenterLossOptions(3, 2).alpha(alpha)),
                        "alpha must be in (0, 1]");
    at::Tensor centers = w.clone();
    CHECK_ANGULAR_ERROR(F::update_centers_(centers, x, y, alpha), "alpha must be in (0, 1]");
  }
  for (double eps : {-0.1, 1.5, nan}) {
    CHECK_ANGULAR_ERROR(F::arc_loss(cos, y, F::ArcLossFuncOptions().label_smoothing(eps)),
                        "label_smoothing must be in [0, 1]");
  }
  CHECK_ANGULAR_ERROR(angular::SoftmaxLoss(0, 2), "SoftmaxLossOptions::num_classes must be >= 1, got 0");
  CHECK_ANGULAR_ERROR(angular::CenterLoss(3, -1), "CenterLossOptions::embedding_dim must be >= 1, got -1");
}

TEST_CASE("CUDA without the fused kernels warns once, saying how to install them", "[errors][cuda]") {
  // This binary does not link angular::cuda, so a CUDA tensor would take the composite path.
  REQUIRE_FALSE(angular::cuda_kernels_registered());
  testing::CapturedWarnings captured;
  c10::WarningUtils::WarningHandlerGuard guard(&captured);
  angular::detail::warn_if_cuda_kernels_missing(at::Device(at::kCPU));
  CHECK(captured.messages.empty());
  angular::detail::warn_if_cuda_kernels_missing(at::Device(at::kCUDA, 0));
  REQUIRE(captured.messages.size() == 1);
  CHECK_THAT(captured.messages[0], Catch::Contains("angular::cuda") &&
                                       Catch::Contains("angular::register_cuda_kernels()"));
  angular::detail::warn_if_cuda_kernels_missing(at::Device(at::kCUDA, 1));
  CHECK(captured.messages.size() == 1);
}

TEST_CASE("label checks of device tensors report the first bad label once its answer has arrived",
          "[errors][labels]") {
  // A queue of its own; CPU answers arrive at once, where a device's would after its copy.
  angular::detail::PendingLabelChecks checks;
  checks.add(at::tensor({3, -100, 7, 9, 2}, at::kLong), "target", 5, -100);
  checks.add(at::tensor({0, 1}, at::kLong), "target", 5, -100);
  CHECK(checks.size() == 2);
  CHECK_ANGULAR_ERROR(checks.raise_arrived(/*wait=*/false),
                      "angular: target[2] = 7 is out of range [0, 5) and is not ignore_index (-100)");
  CHECK(checks.size() == 0);  // each answer is read once
  checks.add(at::tensor({0, 4, -100}, at::kLong), "target", 5, -100);
  checks.add(at::empty({0}, at::kLong), "target", 5, -100);
  CHECK(checks.size() == 1);
  CHECK_NOTHROW(checks.raise_arrived(/*wait=*/true));
  checks.add(at::tensor({2, -1}, at::kLong), "labels", 3, std::nullopt);
  CHECK_THROWS_WITH(checks.raise_arrived(true), Catch::Matchers::Contains("labels[1] = -1 is out of range [0, 3)") &&
                                                    !Catch::Matchers::Contains("ignore_index"));
  // The message is the host check's, which CPU labels keep.
  const at::Tensor x = at::rand({5, 5});
  CHECK_THROWS_WITH(angular::functional::arc_loss(x, at::tensor({3, -100, 7, 9, 2}, at::kLong)),
                    Catch::Matchers::Contains(
                        angular::detail::bad_label_message("target", 2, 7, 5, -100)));
  CHECK(angular::detail::pending_label_checks().size() == 0);  // CPU labels queue nothing
  CHECK_NOTHROW(angular::synchronize_label_checks());
}
