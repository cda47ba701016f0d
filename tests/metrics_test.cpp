// Angle metrics against exact geometric answers.

#include "support/common.hpp"

#include <angular/metrics.hpp>

#include <cmath>
#include <limits>

namespace M = angular::metrics;
using testing::uniform;

namespace {

using angular::kPi;

/// C unit vectors in R^C with pairwise cosine −1/(C − 1): e_i minus the centroid.
at::Tensor simplex(int64_t classes) {
  const at::Tensor v = at::eye(classes, at::kDouble) - 1.0 / static_cast<double>(classes);
  return v / v.norm(2, 1, true);
}

/// Class vectors e_0..e_{C−1} in R^{2C}, and per class `per_class` features at angle φ to
/// them: r·(cos φ·e_i + sin φ·e_{C+i}) with random lengths r.
std::pair<at::Tensor, at::Tensor> rotated(int64_t classes, int64_t per_class, double phi) {
  const at::Tensor weight = at::eye(classes, 2 * classes, at::kDouble);
  at::Tensor features = at::zeros({classes * per_class, 2 * classes}, at::kDouble);
  const at::Tensor lengths = uniform({classes * per_class}, 0.5, 3.0, 3);
  for (int64_t i = 0; i < classes * per_class; ++i) {
    const int64_t c = i % classes;
    features[i][c] = std::cos(phi) * lengths[i].item<double>();
    features[i][classes + c] = std::sin(phi) * lengths[i].item<double>();
  }
  return {features, at::arange(classes * per_class, at::kLong) % classes};
}

}  // namespace

TEST_CASE("WInter: regular simplex and orthonormal class vectors", "[metrics]") {
  CHECK(M::w_inter(simplex(10)) == Approx(std::acos(-1.0 / 9)).epsilon(1e-12));
  CHECK(M::w_inter(simplex(10)) == Approx(1.68214).epsilon(1e-5));  // the paper's CIFAR-10 value
  CHECK(M::w_inter(at::eye(7, at::kDouble) * 3.0) == Approx(kPi / 2).epsilon(1e-12));
  CHECK(M::w_inter(simplex(2).to(at::kFloat)) == Approx(kPi).epsilon(1e-6));
}

TEST_CASE("AngleStats: the three statistics on exact configurations", "[metrics]") {
  SECTION("features equal to their class vectors: WCIntra = 0, CInter = WInter") {
    const at::Tensor w = simplex(10);
    M::AngleStats stats(10, 10);
    stats.update(w.repeat({3, 1}) * 2.5, at::arange(30, at::kLong) % 10);
    const M::AngleSummary s = stats.compute(w);
    CHECK(s.wc_intra == Approx(0).margin(1e-6));
    CHECK(s.w_inter == Approx(std::acos(-1.0 / 9)).epsilon(1e-12));
    CHECK(s.c_inter == Approx(std::acos(-1.0 / 9)).epsilon(1e-9));
    CHECK(s.intra == Approx(0).margin(1e-6));
    CHECK(s.empty_classes == 0);
    CHECK(at::equal(s.counts, at::full({10}, 3, at::kLong)));
  }
  SECTION("features rotated by φ in a plane: WCIntra = φ; orthogonal centers: CInter = π/2") {
    for (double phi : {0.1, 0.7, 1.5, 2.9}) {
      const auto [features, labels] = rotated(6, 5, phi);
      M::AngleStats stats(6, 12);
      stats.update(features.to(at::kFloat), labels);
      const M::AngleSummary s = stats.compute(at::eye(6, 12, at::kFloat));
      CHECK(s.wc_intra == Approx(phi).epsilon(1e-6));
      CHECK(s.w_inter == Approx(kPi / 2).epsilon(1e-12));
      CHECK(s.c_inter == Approx(kPi / 2).epsilon(1e-6));
      for (int64_t c = 0; c < 6; ++c) CHECK(s.wc[c].item<double>() == Approx(phi).epsilon(1e-6));
    }
  }
  SECTION("intra: samples at ±φ around their center direction") {
    const double phi = 0.4;
    const at::Tensor features =
        at::tensor({std::cos(phi), std::sin(phi), std::cos(phi), -std::sin(phi)}, at::kDouble)
            .view({2, 2});
    M::AngleStats stats(1, 2);
    stats.update(features, at::zeros({2}, at::kLong));
    CHECK(stats.compute(at::tensor({1.0, 0.0}, at::kDouble).view({1, 2})).intra ==
          Approx(phi).epsilon(1e-12));
  }
}

TEST_CASE("AngleStats: empty classes are reported and left out", "[metrics]") {
  const auto [features, labels] = rotated(4, 3, 0.3);
  const at::Tensor keep = labels != 2;
  M::AngleStats stats(4, 8);
  stats.update(features.index({keep}), labels.index({keep}));
  const M::AngleSummary s = stats.compute(at::eye(4, 8, at::kDouble));
  CHECK(s.empty_classes == 1);
  CHECK(s.counts[2].item<int64_t>() == 0);
  CHECK(std::isnan(s.wc[2].item<double>()));
  CHECK(s.wc_intra == Approx(0.3).epsilon(1e-9));
  CHECK(s.c_inter == Approx(kPi / 2).epsilon(1e-9));
  CHECK(std::isfinite(s.w_inter));
}

TEST_CASE("AngleStats: streaming, merging and reset agree with one pass", "[metrics]") {
  const at::Tensor features = uniform({2000, 16}, -1, 1, 5);
  const at::Tensor labels = at::randint(10, {2000}, at::make_generator<at::CPUGeneratorImpl>(6), at::kLong);
  const at::Tensor weight = uniform({10, 16}, -1, 1, 7);
  M::AngleStats whole(10, 16), streamed(10, 16), first(10, 16), second(10, 16);
  whole.update(features, labels);
  for (int64_t b = 0; b < 100; ++b)
    streamed.update(features.slice(0, b * 20, (b + 1) * 20), labels.slice(0, b * 20, (b + 1) * 20));
  first.update(features.slice(0, 0, 700), labels.slice(0, 0, 700));
  second.update(features.slice(0, 700), labels.slice(0, 700));
  first.merge(second);
  const M::AngleSummary a = whole.compute(weight), b = streamed.compute(weight),
                        c = first.compute(weight);
  for (const auto* s : {&b, &c}) {
    CHECK(s->wc_intra == Approx(a.wc_intra).epsilon(1e-12));
    CHECK(s->c_inter == Approx(a.c_inter).epsilon(1e-12));
    CHECK(s->intra == Approx(a.intra).epsilon(1e-12));
    CHECK(at::allclose(s->centers, a.centers, 1e-12, 1e-14));
    CHECK(at::equal(s->counts, a.counts));
  }
  streamed.reset();
  CHECK(streamed.counts().sum().item<int64_t>() == 0);
}

TEST_CASE("target angles, histograms, similarity matrices, top-k accuracy", "[metrics]") {
  const auto [features, labels] = rotated(3, 2, 0.5);
  const at::Tensor weight = at::eye(3, 6, at::kDouble);
  const at::Tensor angles = M::target_angles(features, labels, weight);
  CHECK(at::allclose(angles, at::full({6}, 0.5, at::kDouble), 1e-12, 1e-12));

  const at::Tensor spread = at::tensor({0.0, 0.4, 1.0, 3.2, 1.6, -0.1}, at::kDouble);
  const at::Tensor owners = at::tensor({0, 0, 0, 1, 1, 1}, at::kLong);
  // 4 bins of π/4 over [0, π): out-of-range values land in the end bins.
  const at::Tensor histogram = M::angle_histogram(spread, owners, 2, 4);
  CHECK(at::equal(histogram, at::tensor({2, 1, 0, 0, 1, 0, 1, 1}, at::kLong).view({2, 4})));
  CHECK(histogram.sum().item<int64_t>() == 6);

  const at::Tensor similarity = M::cosine_similarity_matrix(simplex(5) * 4.0);
  CHECK(at::allclose(similarity.diagonal(), at::ones({5}, at::kDouble)));
  CHECK(similarity[0][3].item<double>() == Approx(-0.25).epsilon(1e-12));

  const at::Tensor logits = at::tensor({0.1, 0.9, 0.0, 0.5, 0.2, 0.3, 0.0, 0.1, 0.9}, at::kDouble).view({3, 3});
  const at::Tensor truth = at::tensor({1, 2, 0}, at::kLong);
  CHECK(M::top_k_accuracy(logits, truth, 1) == Approx(1.0 / 3));
  CHECK(M::top_k_accuracy(logits, truth, 2) == Approx(2.0 / 3));
  CHECK(M::top_k_accuracy(logits, truth, 3) == Approx(1.0));
}

TEST_CASE("metrics: bad inputs are named", "[metrics][errors]") {
  M::AngleStats stats(3, 4);
  CHECK_ANGULAR_ERROR(stats.update(at::rand({5, 3}), at::zeros({5}, at::kLong)), "features must be [B, 4]");
  CHECK_ANGULAR_ERROR(stats.update(at::rand({2, 4}), at::tensor({0, 3}, at::kLong)),
                      "labels[1] = 3 is out of range [0, 3)");
  CHECK_ANGULAR_ERROR(stats.update(at::ones({2, 4}, at::kInt), at::zeros({2}, at::kLong)),
                      "features must be a floating-point tensor");
  at::Tensor zero_row = at::rand({2, 4});
  zero_row[1].zero_();
  CHECK_ANGULAR_ERROR(stats.update(zero_row, at::zeros({2}, at::kLong)), "features row 1 has zero norm");
  for (const double bad : {std::nan(""), std::numeric_limits<double>::infinity()}) {
    INFO("a feature " << bad);
    at::Tensor bad_row = at::rand({3, 4});
    bad_row[2][1] = bad;
    CHECK_ANGULAR_ERROR(stats.update(bad_row, at::zeros({3}, at::kLong)), "features row 2 is not finite");
    CHECK_ANGULAR_ERROR(stats.update(bad_row.to(at::kDouble), at::zeros({3}, at::kLong)),
                        "features row 2 is not finite");
    CHECK_ANGULAR_ERROR(M::target_angles(bad_row, at::zeros({3}, at::kLong), at::rand({3, 4})),
                        "features row 2 is not finite");
    CHECK_ANGULAR_ERROR(M::cosine_similarity_matrix(bad_row), "features row 2 is not finite");
    CHECK_ANGULAR_ERROR(M::w_inter(bad_row), "weight row 2 is not finite");
  }
  stats.update(at::rand({2, 4}) + 0.1, at::zeros({2}, at::kLong));
  at::Tensor bad_weight = at::rand({3, 4});
  bad_weight[2].zero_();
  CHECK_ANGULAR_ERROR(stats.compute(bad_weight), "weight row 2 has zero norm");
  CHECK_ANGULAR_ERROR(stats.compute(at::rand({3, 5})), "weight must be [3, 4]");
  CHECK_ANGULAR_ERROR(M::w_inter(at::rand({1, 4})), "at least 2 classes");
  CHECK_ANGULAR_ERROR(M::target_angles(at::rand({2, 5}), at::zeros({2}, at::kLong), at::rand({3, 4})),
                      "features must be [B, 4]");
  CHECK_ANGULAR_ERROR(M::top_k_accuracy(at::rand({2, 3}), at::zeros({2}, at::kLong), 4), "k must be in [1, 3]");
  CHECK_ANGULAR_ERROR(M::AngleStats(0, 4), "num_classes must be >= 1");
  M::AngleStats other(3, 5);
  CHECK_ANGULAR_ERROR(stats.merge(other), "cannot merge");
}

TEST_CASE("metrics: every result is finite for finite input, cosines beyond ±1 included",
          "[metrics]") {
  // Parallel and antiparallel vectors make cosines round past ±1; the clamp keeps acos finite.
  const at::Tensor w = at::tensor({1e8, 1.0, -3e7, -0.3}, at::kDouble).view({2, 2});
  M::AngleStats stats(2, 2);
  stats.update(w * 7.0, at::tensor({0, 1}, at::kLong));
  const auto s = stats.compute(w);
  for (double v : {s.wc_intra, s.w_inter, s.c_inter, s.intra}) CHECK(std::isfinite(v));
}
