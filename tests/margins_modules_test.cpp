// The margins beyond the paper's four, part two: SphereFace's ψ and schedule, the
// features-level paths of sub-center ArcFace and SphereFace, dominant sub-centers and outliers,
// the buffers of AdaFace and CurricularFace against their papers' updates, the modules against
// their functional form, and the hyper-parameter checks. (margins_test.cpp: the formulas.)

#include "support/gradcheck.hpp"
#include "support/linear.hpp"
#include "support/margins.hpp"

#include <sstream>

using namespace testing;

namespace F = angular::functional;
using angular::kPi;

TEST_CASE("SphereFace's ψ at the segment bounds and its annealing schedule", "[margins]") {
  // ψ(kπ/m) = 1 − 2k from both sides; cos at those angles through the fused kernel.
  const int m = 4;
  for (int k = 0; k <= m; ++k) {
    const double theta = k * kPi / m;
    const at::Tensor c = at::tensor({std::cos(theta), 0.0}, at::kDouble).view({1, 2});
    const at::Tensor loss = F::sphereface_loss(c, at::ones({1}, at::kDouble), at::zeros({1}, at::kLong),
                                               F::SphereFaceLossFuncOptions().reduction(torch::kNone));
    const double z = -std::log(std::expm1(loss.item<double>()));
    INFO("k " << k);
    CHECK(z == Approx(1 - 2 * std::min(k, m)).margin(k == 0 || k == m ? 2e-6 : 1e-9));
  }
  CHECK(angular::sphereface_lambda(0) == Approx(1000));
  CHECK(angular::sphereface_lambda(10) == Approx(1000 / 2.2));
  CHECK(angular::sphereface_lambda(100000) == Approx(5));
}

TEST_CASE("the new margins' features-level paths: sub-center ArcFace over [C·K, D], SphereFace's norm gradient",
          "[linear][margins]") {
  const int64_t batch = 11, classes = 7, k = 3, dim = 5;
  const at::Tensor x = uniform({batch, dim}, -1, 1, 18);
  const at::Tensor w = uniform({classes * k, dim}, -1, 1, 19);
  const at::Tensor y = labels(batch, classes, 20);
  LossUnderTest subcenter{"subcenter-arcface",
                          [](auto& xx, auto& ww, auto& yy, auto& ce, auto rows) {
                            return F::linear_subcenter_arcface_loss(
                                xx, ww, yy, with_case(F::SubCenterArcFaceLossFuncOptions().scale(16), ce, rows));
                          },
                          [](auto& xx, auto& ww, auto& yy, auto& ce, auto rows) {
                            return F::subcenter_arcface_loss(
                                angular::detail::cosine_matrix(xx, ww), yy,
                                with_case(F::SubCenterArcFaceLossFuncOptions().scale(16), ce, rows));
                          }};
  for (const auto& ce : cross_entropy_cases(classes))
    for (const int64_t rows : {1, 4, 0}) {
      check_against_composite(subcenter, x.to(at::kFloat), w.to(at::kFloat), y, ce, rows, 2e-5, 1e-6);
      check_against_composite(subcenter, x, w, y, ce, rows, 1e-10, 1e-12);
    }
  const auto result = gradcheck(
      [&](const std::vector<at::Tensor>& in) {
        return subcenter.fused(in[0], in[1], y.slice(0, 0, 4), cross_entropy_cases(classes)[4], 3);
      },
      {x.slice(0, 0, 4), w});
  INFO(result.report);
  CHECK(result.ok);
}

TEST_CASE("dominant sub-centers and outliers: a worked example", "[margins]") {
  // 2 classes × 2 sub-centers. Class 0: samples nearest sub-center 1 (twice) and 0 (once), so
  // 1 dominates; the sample nearest 0 is 90° from sub-center 1, an outlier at 75°. Class 1 has
  // no sample.
  const at::Tensor cos = at::tensor({0.1, 0.9, 0.0, 0.0,  //
                                     0.2, 0.8, 0.0, 0.0,  //
                                     1.0, 0.0, 0.0, 0.0},
                                    at::kFloat)
                             .view({3, 4});
  const at::Tensor y = at::zeros({3}, at::kLong);
  CHECK(at::equal(F::dominant_sub_centers(cos, y, 2), at::tensor({1, -1}, at::kLong)));
  CHECK(at::equal(F::sub_center_outliers(cos, y, 2), at::tensor({0, 0, 1}).to(at::kBool)));
  CHECK(at::equal(F::sub_center_outliers(cos, y, 2, 95.0), at::zeros({3}, at::kBool)));
  // Through the module's class vectors: its features on sub-center rows 1, 1 and 0 of class 0.
  angular::SubCenterArcFaceLoss module(2, 4, 2);
  module->weight.data().copy_(at::eye(4));
  const at::Tensor features = at::tensor({0.1, 0.9, 0.0, 0.0, 0.2, 0.8, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0}).view({3, 4});
  CHECK(at::equal(module->dominant_centers(features, y), at::tensor({1, -1}, at::kLong)));
  CHECK(at::equal(module->outliers(features, y), at::tensor({0, 0, 1}).to(at::kBool)));
  CHECK(module->logits(features).sizes() == at::IntArrayRef({3, 2}));
}

TEST_CASE("AdaFace's and CurricularFace's buffers move in training mode only, as their papers' updates, and "
          "survive save and load",
          "[margins][module]") {
  const int64_t batch = 6, classes = 5, dim = 4;
  const at::Tensor x = uniform({batch, dim}, -3, 3, 21).to(at::kFloat);
  at::Tensor y = labels(batch, classes, 22);
  y[2] = -100;  // ignored: not in the statistics
  const at::Tensor kept = y != -100;

  angular::AdaFaceLoss adaface(angular::AdaFaceLossOptions(classes, dim).momentum(0.1));
  const at::Tensor n = x.norm(2, 1).to(at::kDouble).masked_select(kept);
  const double mean = 0.1 * n.mean().item<double>() + 0.9 * 20;
  const double std = 0.1 * n.std().item<double>() + 0.9 * 100;
  adaface->eval();
  const at::Tensor eval_loss = adaface(x, y);
  CHECK(adaface->norm_mean.item<double>() == 20);
  CHECK(adaface->norm_std.item<double>() == 100);
  adaface->train();
  const at::Tensor train_loss = adaface(x, y);
  CHECK(adaface->norm_mean.item<double>() == Approx(mean).epsilon(1e-6));
  CHECK(adaface->norm_std.item<double>() == Approx(std).epsilon(1e-6));
  // Each loss used the statistics of its moment: eval mode the first ones, training mode the
  // moved ones.
  const auto with_statistics = [&](double m, double s) {
    return F::adaface_loss(adaface->cosines(x), x.norm(2, 1), y, at::full({1}, m), at::full({1}, s));
  };
  CHECK(at::allclose(eval_loss, with_statistics(20, 100), 1e-6, 1e-6));
  CHECK(at::allclose(train_loss, with_statistics(mean, std), 1e-6, 1e-6));
  adaface->eval();
  CHECK(at::allclose(adaface(x, y), train_loss));
  // One kept row: no spread to measure, the statistics stay.
  adaface->train();
  at::Tensor lone = at::full({batch}, -100, at::kLong);
  lone[0] = 1;
  adaface(x, lone);
  CHECK(adaface->norm_mean.item<double>() == Approx(mean).epsilon(1e-6));

  angular::CurricularFaceLoss curricular(angular::CurricularFaceLossOptions(classes, dim).momentum(0.2));
  const at::Tensor label_cos = angular::detail::cosine_matrix(x.to(at::kDouble), curricular->weight.to(at::kDouble))
                                   .gather(1, y.clamp_min(0).unsqueeze(1))
                                   .squeeze(1)
                                   .masked_select(kept);
  curricular->eval();
  curricular(x, y);
  CHECK(curricular->t.item<double>() == 0);
  curricular->train();
  curricular(x, y);
  CHECK(curricular->t.item<double>() == Approx(0.2 * label_cos.mean().item<double>()).margin(1e-6));

  // A failed call moves nothing.
  const double t_before = curricular->t.item<double>();
  CHECK_THROWS(curricular(x, at::full({batch}, 7, at::kLong)));
  CHECK(curricular->t.item<double>() == t_before);

  std::stringstream a, c;
  torch::save(adaface, a);
  torch::save(curricular, c);
  angular::AdaFaceLoss adaface_loaded(angular::AdaFaceLossOptions(classes, dim));
  angular::CurricularFaceLoss curricular_loaded(angular::CurricularFaceLossOptions(classes, dim));
  torch::load(adaface_loaded, a);
  torch::load(curricular_loaded, c);
  CHECK(adaface_loaded->norm_mean.item<double>() == adaface->norm_mean.item<double>());
  CHECK(adaface_loaded->norm_std.item<double>() == adaface->norm_std.item<double>());
  CHECK(curricular_loaded->t.item<double>() == curricular->t.item<double>());
  CHECK(at::equal(curricular_loaded->weight, curricular->weight));
}

TEST_CASE("the new margins' modules equal their functional form over the module's class vectors",
          "[margins][module]") {
  const int64_t batch = 9, classes = 6, dim = 5;
  const at::Tensor x = uniform({batch, dim}, -2, 2, 23).to(at::kFloat);
  const at::Tensor y = labels(batch, classes, 24);
  namespace D = angular::detail;
  angular::CombinedMarginLoss combined(angular::CombinedMarginLossOptions(classes, dim).m1(1.2).m3(0.1));
  CHECK(at::allclose(combined(x, y), F::combined_margin_loss(combined->cosines(x), y,
                                                             F::CombinedMarginLossFuncOptions().m1(1.2).m3(0.1)),
                     1e-5, 1e-5));
  angular::SphereFaceLoss sphereface(angular::SphereFaceLossOptions(classes, dim).lambda(2));
  CHECK(at::allclose(
      sphereface(x, y),
      F::sphereface_loss(sphereface->cosines(x), x.norm(2, 1), y, F::SphereFaceLossFuncOptions().lambda(2)), 1e-5,
      1e-5));
  CHECK(at::allclose(sphereface->logits(x), sphereface->cosines(x) * x.norm(2, 1, true), 1e-5, 1e-6));
  angular::SubCenterArcFaceLoss subcenter(classes, dim, 2);
  CHECK(subcenter->weight.sizes() == at::IntArrayRef({classes * 2, dim}));
  CHECK(at::allclose(subcenter(x, y), F::subcenter_arcface_loss(subcenter->cosines(x), y,
                                                                F::SubCenterArcFaceLossFuncOptions().sub_centers(2)),
                     1e-5, 1e-5));
  angular::AdaFaceLoss adaface(classes, dim);
  adaface->eval();
  CHECK(at::allclose(adaface(x, y), F::adaface_loss(adaface->cosines(x), x.norm(2, 1), y, adaface->norm_mean,
                                                    adaface->norm_std),
                     1e-5, 1e-5));
  angular::CurricularFaceLoss curricular(classes, dim);
  curricular->eval();
  curricular->t.fill_(0.5);
  CHECK(at::allclose(curricular(x, y), F::curricularface_loss(curricular->cosines(x), y, curricular->t), 1e-5, 1e-5));
  angular::CosFaceLoss cosface(angular::CosFaceLossOptions(classes, dim).label_smoothing(0.1));
  CHECK(at::allclose(cosface(x, y),
                     F::cosface_loss(cosface->cosines(x), y, F::CosFaceLossFuncOptions().label_smoothing(0.1)), 1e-5,
                     1e-5));
  CHECK(at::allclose(cosface->logits(x), cosface->cosines(x) * 64, 1e-5, 1e-6));  // CosFace's s = 64
  angular::NormFaceLoss normface(classes, dim);
  CHECK(at::allclose(normface(x, y), F::normface_loss(normface->cosines(x), y), 1e-5, 1e-5));
  CHECK(at::allclose(normface->logits(x), normface->cosines(x) * 16, 1e-5, 1e-6));
  std::ostringstream printed;
  printed << *subcenter << *adaface << *cosface << *normface;
  CHECK(printed.str().find("sub_centers=2") != std::string::npos);
  CHECK(printed.str().find("angular::CosFaceLoss(num_classes=6, embedding_dim=5, scale=64, margin=0.35)") !=
        std::string::npos);
  CHECK(printed.str().find("angular::NormFaceLoss(num_classes=6, embedding_dim=5, scale=16)") != std::string::npos);
}

TEST_CASE("the new margins' bad hyper-parameters and inputs are named", "[margins][errors]") {
  const at::Tensor cos = at::rand({4, 6}), y = at::tensor({0, 1, 2, 1}, at::kLong), n = at::ones({4});
  CHECK_ANGULAR_ERROR(F::sphereface_loss(cos, n, y, F::SphereFaceLossFuncOptions().margin(2.5)),
                      "margin must be an integer in [1, 64]");
  CHECK_ANGULAR_ERROR(F::sphereface_loss(cos, n, y, F::SphereFaceLossFuncOptions().margin(0)),
                      "margin must be an integer");
  CHECK_ANGULAR_ERROR(F::sphereface_loss(cos, n, y, F::SphereFaceLossFuncOptions().lambda(-1)), "lambda must be");
  CHECK_ANGULAR_ERROR(F::sphereface_loss(cos, at::ones({3}), y), "norms must be [4]");
  CHECK_ANGULAR_ERROR(angular::SubCenterArcFaceLoss(5, 4, 0), "sub_centers must be >= 1, got 0");
  CHECK_ANGULAR_ERROR(F::subcenter_arcface_loss(cos, y, F::SubCenterArcFaceLossFuncOptions().sub_centers(4)),
                      "cos must have sub_centers (4) columns per class");
  CHECK_ANGULAR_ERROR(F::subcenter_arcface_loss(cos, y, F::SubCenterArcFaceLossFuncOptions().sub_centers(3)),
                      "target[2] = 2 is out of range [0, 2)");
  CHECK_ANGULAR_ERROR(angular::AdaFaceLoss(angular::AdaFaceLossOptions(5, 4).momentum(0)),
                      "momentum must be in (0, 1]");
  CHECK_ANGULAR_ERROR(angular::CurricularFaceLoss(angular::CurricularFaceLossOptions(5, 4).momentum(1.5)),
                      "momentum must be in (0, 1]");
  CHECK_ANGULAR_ERROR(angular::AdaFaceLoss(angular::AdaFaceLossOptions(5, 4).h(0)), "h must be a finite number > 0");
  CHECK_ANGULAR_ERROR(F::adaface_loss(cos, n, y, at::ones({2}), at::ones({1})), "norm_mean must hold one");
  CHECK_ANGULAR_ERROR(F::curricularface_loss(cos, y, at::ones({1}, at::kLong)), "t must hold one floating-point");
  CHECK_ANGULAR_ERROR(F::combined_margin_loss(cos, y, F::CombinedMarginLossFuncOptions().m1(0)), "m1 must be");
  CHECK_ANGULAR_ERROR(F::combined_margin_loss(cos, y, F::CombinedMarginLossFuncOptions().m2(4)),
                      "m2 must be in [0, pi)");
  CHECK_ANGULAR_ERROR(F::combined_margin_loss(cos, y, F::CombinedMarginLossFuncOptions().m3(-0.1)), "m3 must be");
  CHECK_ANGULAR_ERROR(F::sub_center_outliers(cos, y, 2, 200), "threshold_degrees must be in [0, 180]");
  CHECK_ANGULAR_ERROR(angular::CosFaceLoss(angular::CosFaceLossOptions(5, 4).margin(-1)), "margin must be");
  CHECK_ANGULAR_ERROR(angular::NormFaceLoss(angular::NormFaceLossOptions(5, 4).scale(0)), "scale must be");
  CHECK_ANGULAR_ERROR(angular::CosFaceLoss(0, 4), "CosFaceLossOptions::num_classes must be >= 1, got 0");
}
