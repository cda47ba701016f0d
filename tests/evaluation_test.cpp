// Retrieval and verification metrics: hand-computed cases, a brute-force float64 oracle on
// random data, ties, empty inputs and bad arguments.

#include "support/common.hpp"
#include "support/evaluation_oracle.hpp"

#include <angular/evaluation.hpp>

#include <cmath>

namespace E = angular::evaluation;
using testing::uniform;

namespace {

/// Unit vectors at the given angles (degrees) in the plane.
at::Tensor at_angles(const std::vector<double>& degrees) {
  at::Tensor x = at::empty({static_cast<int64_t>(degrees.size()), 2}, at::kDouble);
  for (size_t i = 0; i < degrees.size(); ++i) {
    x[i][0] = std::cos(degrees[i] * angular::kPi / 180);
    x[i][1] = std::sin(degrees[i] * angular::kPi / 180);
  }
  return x;
}

at::Tensor longs(std::vector<int64_t> values) { return at::tensor(values, at::kLong); }

/// The library's search (the CPU kernel or ATen's operations) with `chunk` references per chunk.
E::RetrievalMetrics search(const angular::detail::RetrievalProblem& problem, int64_t chunk, bool kernel) {
  return angular::detail::retrieval(problem, E::RetrievalOptions().chunk_size(chunk).recall_at({1, 2, 4}), kernel);
}

void check_equal(const E::RetrievalMetrics& got, const testing::oracle::Retrieval& want) {
  CHECK(got.queries == want.queries);
  CHECK(got.queries_without_relevant == want.without_relevant);
  CHECK(got.precision_at_1 == Approx(want.p1).margin(1e-12));
  CHECK(got.r_precision == Approx(want.r_precision).margin(1e-12));
  CHECK(got.map_at_r == Approx(want.map_at_r).margin(1e-12));
  CHECK(got.mean_reciprocal_rank == Approx(want.mrr).margin(1e-12));
  REQUIRE(got.recall.size() == want.recall.size());
  for (size_t k = 0; k < got.recall.size(); ++k) CHECK(got.recall[k] == Approx(want.recall[k]).margin(1e-12));
}

}  // namespace

TEST_CASE("retrieval: a worked example, leave-one-out", "[evaluation]") {
  // Angles 0, 10, 25, 45, 100 degrees, labels A A B A B. Rankings (nearest first):
  //   q0 (A): 1A 2B 3A 4B   R=2  R-prec 1/2  AP@R (1/2)(1)   = 1/2   rank 1
  //   q1 (A): 0A 2B 3A 4B   R=2  R-prec 1/2  AP@R 1/2                rank 1
  //   q2 (B): 1A 3A 0A 4B   R=1  R-prec 0    AP@R 0                  rank 4 (beyond R)
  //   q3 (A): 2B 1A 0A 4B   R=2  R-prec 1/2  AP@R (1/2)(1/2) = 1/4   rank 2
  //   q4 (B): 3A 2B 1A 0A   R=1  R-prec 0    AP@R 0                  rank 2 (beyond R)
  // P@1 = 2/5, R-precision = 1.5/5, MAP@R = 1.25/5, MRR = (1+1+1/4+1/2+1/2)/5,
  // recall@1, 2, 4 = 2/5, 4/5, 5/5.
  const auto problem = angular::detail::leave_one_out_problem(at_angles({0, 10, 25, 45, 100}), longs({0, 0, 1, 0, 1}));
  for (const bool kernel : {true, false})
    for (const int64_t chunk : {1, 2, 3, 0}) {
      CAPTURE(kernel, chunk);
      const E::RetrievalMetrics m = search(problem, chunk, kernel);
      CHECK(m.queries == 5);
      CHECK(m.precision_at_1 == Approx(0.4));
      CHECK(m.r_precision == Approx(0.3));
      CHECK(m.map_at_r == Approx(0.25));
      CHECK(m.mean_reciprocal_rank == Approx(3.25 / 5));
      CHECK(m.recall == std::vector<double>{0.4, 0.8, 1.0});
    }
}

TEST_CASE("retrieval: equal similarities rank the lower reference index first", "[evaluation]") {
  // x0 = e0 (label 0), x1 = e1 (1), x2 = e0 (1), x3 = e0 (0), x4 = e2 (7, alone: left out).
  // Similarities are exactly 0 or 1. Rankings:
  //   q0: 2(1) 3(0) 1 4   R=1: nearest wrong, the relevant x3 second   P@1 0, RR 1/2
  //   q1: 0 2(1) 3 4      R=1: all tie at 0, x2 second                 P@1 0, RR 1/2
  //   q2: 0 3 1(1) 4      R=1: x1 third                                P@1 0, RR 1/3
  //   q3: 0(0) 2 1 4      R=1: x0 first                                P@1 1, RR 1
  at::Tensor x = at::zeros({5, 3}, at::kDouble);
  x[0][0] = x[2][0] = x[3][0] = 1;
  x[1][1] = x[4][2] = 1;
  const auto problem = angular::detail::leave_one_out_problem(x, longs({0, 1, 1, 0, 7}));
  for (const bool kernel : {true, false})
    for (const int64_t chunk : {1, 2, 4, 0}) {
      CAPTURE(kernel, chunk);
      const E::RetrievalMetrics m = search(problem, chunk, kernel);
      CHECK(m.queries == 4);
      CHECK(m.queries_without_relevant == 1);
      CHECK(m.precision_at_1 == Approx(0.25));
      CHECK(m.r_precision == Approx(0.25));
      CHECK(m.map_at_r == Approx(0.25));
      CHECK(m.mean_reciprocal_rank == Approx((0.5 + 0.5 + 1.0 / 3 + 1) / 4));
      CHECK(m.recall == std::vector<double>{0.25, 0.75, 1.0});
    }
}

TEST_CASE("retrieval equals the brute-force float64 oracle on random data", "[evaluation]") {
  const std::vector<int64_t> ks = {1, 2, 4};
  SECTION("queries against references, some labels absent from the references") {
    const at::Tensor q = uniform({37, 5}, -1, 1, 1), r = uniform({101, 5}, -1, 1, 2);
    const at::Tensor qy = at::randint(9, {37}, at::make_generator<at::CPUGeneratorImpl>(3), at::kLong);
    const at::Tensor ry = at::randint(8, {101}, at::make_generator<at::CPUGeneratorImpl>(4), at::kLong);
    const auto want = testing::oracle::retrieval(q, qy, r, ry, ks, false);
    REQUIRE(want.without_relevant > 0);  // label 8 never among the references
    const auto problem = angular::detail::retrieval_problem(q, qy, r, ry);
    for (const bool kernel : {true, false})
      for (const int64_t chunk : {1, 7, 101, 0}) {
        CAPTURE(kernel, chunk);
        check_equal(search(problem, chunk, kernel), want);
      }
  }
  SECTION("leave-one-out, classes of very different sizes, more queries than one block") {
    const at::Tensor x = uniform({150, 4}, -1, 1, 5);
    at::Tensor y = at::randint(6, {150}, at::make_generator<at::CPUGeneratorImpl>(6), at::kLong);
    y.slice(0, 0, 60).fill_(2);  // one large class
    y[149] = 99;                 // one class of one sample
    const auto want = testing::oracle::retrieval(x, y, x, y, ks, true);
    const auto problem = angular::detail::leave_one_out_problem(x, y);
    for (const bool kernel : {true, false})
      for (const int64_t chunk : {3, 64, 150, 0}) {
        CAPTURE(kernel, chunk);
        check_equal(search(problem, chunk, kernel), want);
      }
  }
}

TEST_CASE("retrieval: bitwise repeatable, and the same on 1 and 2 threads", "[evaluation][determinism]") {
  const at::Tensor x = uniform({300, 8}, -1, 1, 21).to(at::kFloat);
  const at::Tensor y = at::arange(300, at::kLong) % 7;
  const int threads = at::get_num_threads();
  const auto run = [&](int n) {
    at::set_num_threads(n);
    return E::retrieval_metrics(x, y, E::RetrievalOptions().chunk_size(50));
  };
  const E::RetrievalMetrics a = run(2), b = run(2), c = run(1);
  at::set_num_threads(threads);
  for (const E::RetrievalMetrics* m : {&b, &c}) {
    CHECK(m->precision_at_1 == a.precision_at_1);
    CHECK(m->r_precision == a.r_precision);
    CHECK(m->map_at_r == a.map_at_r);
    CHECK(m->mean_reciprocal_rank == a.mean_reciprocal_rank);
    CHECK(m->recall == a.recall);
  }
}

TEST_CASE("retrieval: dtypes, devices of the API, empty inputs", "[evaluation]") {
  const at::Tensor x = uniform({40, 6}, -1, 1, 8).to(at::kHalf);
  const at::Tensor y = at::arange(40, at::kLong) % 5;
  const E::RetrievalMetrics half = E::retrieval_metrics(x, y);
  const E::RetrievalMetrics single = E::retrieval_metrics(x.to(at::kFloat), y);
  CHECK(half.map_at_r == single.map_at_r);  // half is promoted to float32, then the same search
  CHECK(half.mean_reciprocal_rank == single.mean_reciprocal_rank);
  // A non-contiguous view gives the metrics of its contiguous copy.
  const at::Tensor wide = uniform({40, 12}, -1, 1, 9);
  CHECK(E::retrieval_metrics(wide.slice(1, 0, 12, 2), y).map_at_r ==
        E::retrieval_metrics(wide.slice(1, 0, 12, 2).contiguous(), y).map_at_r);

  const E::RetrievalMetrics none = E::retrieval_metrics(at::empty({0, 6}), at::empty({0}, at::kLong));
  CHECK(none.queries == 0);
  CHECK(std::isnan(none.map_at_r));
  CHECK(std::isnan(none.recall[0]));
  const E::RetrievalMetrics no_references =
      E::retrieval_metrics(x.to(at::kFloat), y, at::empty({0, 6}), at::empty({0}, at::kLong));
  CHECK(no_references.queries == 0);
  CHECK(no_references.queries_without_relevant == 40);
  const E::RetrievalMetrics one = E::retrieval_metrics(at::ones({1, 6}), at::zeros({1}, at::kLong));
  CHECK(one.queries_without_relevant == 1);
}

TEST_CASE("retrieval: bad arguments are named", "[evaluation][errors]") {
  at::Tensor x = uniform({10, 4}, -1, 1, 10);
  const at::Tensor y = at::arange(10, at::kLong) % 3;
  at::Tensor with_nan = x.clone();
  with_nan[3][1] = NAN;
  CHECK_ANGULAR_ERROR(E::retrieval_metrics(with_nan, y), "embeddings row 3 is not finite");
  at::Tensor with_zero = x.clone();
  with_zero[4].zero_();
  CHECK_ANGULAR_ERROR(E::retrieval_metrics(with_zero, y), "embeddings row 4 has zero norm");
  CHECK_ANGULAR_ERROR(E::retrieval_metrics(x, y.to(at::kInt)), "labels must be int64");
  CHECK_ANGULAR_ERROR(E::retrieval_metrics(x, y.slice(0, 0, 9)), "labels must be [10]");
  CHECK_ANGULAR_ERROR(E::retrieval_metrics(x, y, uniform({5, 3}, -1, 1, 1), y.slice(0, 0, 5)),
                      "same embedding size");
  CHECK_ANGULAR_ERROR(E::retrieval_metrics(x, y, E::RetrievalOptions().recall_at({1, 0})), "recall_at");
  CHECK_ANGULAR_ERROR(E::retrieval_metrics(x, y, E::RetrievalOptions().chunk_size(-1)), "chunk_size");
}

TEST_CASE("verification: a worked example", "[evaluation]") {
  // Scores 0.9 G, 0.8 I, 0.7 G, 0.6 G, 0.5 I, 0.4 I, 0.3 G, 0.2 I (G genuine, I impostor).
  // ROC (threshold: TAR, FAR): inf 0,0; .9 .25,0; .8 .25,.25; .7 .5,.25; .6 .75,.25;
  // .5 .75,.5; .4 .75,.75; .3 1,.75; .2 1,1.
  // TAR@FAR=0.25 is 0.75 (threshold 0.6); FAR = 0.1 needs 10 impostors: NaN.
  // FNR − FPR is 0 at threshold 0.6: EER 0.25. AUC = 11/16 (11 of the 16 G-I pairs ordered).
  const at::Tensor s = at::tensor({0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2}, at::kDouble);
  const at::Tensor same = at::tensor({1, 0, 1, 1, 0, 0, 1, 0}, at::kLong).to(at::kBool);
  const E::VerificationMetrics v =
      E::verification_metrics(s, same, E::VerificationOptions().far({0.1, 0.25, 0.5, 1.0}).folds(2));
  CHECK(v.genuine_pairs == 4);
  CHECK(v.impostor_pairs == 4);
  CHECK(testing::close(v.roc.tpr, at::tensor({0.0, .25, .25, .5, .75, .75, .75, 1.0, 1.0}, at::kDouble), 0, 1e-15));
  CHECK(testing::close(v.roc.fpr, at::tensor({0.0, 0.0, .25, .25, .25, .5, .75, .75, 1.0}, at::kDouble), 0, 1e-15));
  CHECK(std::isinf(v.roc.thresholds[0].item<double>()));
  CHECK(std::isnan(v.tar[0]));
  CHECK(v.tar[1] == 0.75);
  CHECK(v.tar[2] == 0.75);
  CHECK(v.tar[3] == 1.0);
  CHECK(v.eer == Approx(0.25));
  CHECK(v.auc == Approx(11.0 / 16));
  // Two folds. Fold 1 (.5I .4I .3G .2I) classifies itself best by accepting nothing (3 of
  // 4), which gets 1 of fold 0 (.9G .8I .7G .6G) right; fold 0 is best split at 0.6 (3 of 4),
  // which gets 3 of fold 1 right. Mean 1/2, population std 1/4.
  CHECK(v.accuracy == Approx(0.5));
  CHECK(v.accuracy_std == Approx(0.25));
}

TEST_CASE("verification: ties count one half; the oracle on random pairs", "[evaluation]") {
  const E::VerificationMetrics tie =
      E::verification_metrics(at::tensor({0.5, 0.5}, at::kDouble), at::tensor({1, 0}, at::kLong).to(at::kBool));
  CHECK(tie.auc == Approx(0.5));
  CHECK(tie.eer == Approx(0.5));

  // Rounded scores: many ties within and across the two kinds of pairs.
  const at::Tensor s = (uniform({300}, 0, 1, 12) * 40).round() / 40;
  const at::Tensor same = uniform({300}, 0, 1, 13) < s;  // higher scores more often genuine
  const std::vector<double> sv(s.data_ptr<double>(), s.data_ptr<double>() + 300);
  std::vector<bool> gv;
  for (int64_t i = 0; i < 300; ++i) gv.push_back(same[i].item<bool>());
  const E::VerificationMetrics v = E::verification_metrics(s, same, E::VerificationOptions().far({0.01, 0.05, 0.3}));
  CHECK(v.auc == Approx(testing::oracle::auc(sv, gv)).margin(1e-12));
  for (size_t j = 0; j < v.far.size(); ++j)
    CHECK(v.tar[j] == Approx(testing::oracle::tar_at_far(sv, gv, v.far[j])).margin(1e-12));
  CHECK(v.accuracy == Approx(testing::oracle::fold_accuracy(sv, gv, 10)).margin(1e-12));
  // The EER's point is where the interpolated FAR and FNR meet.
  CHECK(v.eer > 0);
  CHECK(v.eer < 0.5);
}

TEST_CASE("verification: all pairs and pair similarities", "[evaluation]") {
  const at::Tensor x = uniform({23, 4}, -1, 1, 14);
  const at::Tensor y = at::arange(23, at::kLong) % 4;
  const auto unit = testing::oracle::unit_rows(x);
  for (const int64_t chunk : {1, 5, 1024}) {
    const E::Pairs pairs = E::all_pairs(x, y, chunk);
    REQUIRE(pairs.scores.numel() == 23 * 22 / 2);
    int64_t p = 0;
    for (int64_t i = 0; i < 23; ++i)
      for (int64_t j = i + 1; j < 23; ++j, ++p) {
        double dot = 0;
        for (int64_t k = 0; k < 4; ++k) dot += unit[i][k] * unit[j][k];
        CHECK(pairs.scores[p].item<double>() == Approx(dot).margin(1e-12));
        CHECK(pairs.same[p].item<bool>() == (i % 4 == j % 4));
      }
  }
  const at::Tensor a = uniform({6, 4}, -1, 1, 15), b = uniform({6, 4}, -1, 1, 16);
  CHECK(testing::close(E::pair_similarities(a, b), at::cosine_similarity(a, b, 1), 0, 1e-12));
  CHECK(E::all_pairs(at::ones({1, 3}), at::zeros({1}, at::kLong)).scores.numel() == 0);
}

TEST_CASE("verification: bad arguments are named", "[evaluation][errors]") {
  const at::Tensor s = at::tensor({0.1, 0.2}, at::kDouble);
  const at::Tensor same = at::tensor({1, 0}, at::kLong).to(at::kBool);
  CHECK_ANGULAR_ERROR(E::verification_metrics(s, same.to(at::kLong)), "same must be a bool tensor");
  CHECK_ANGULAR_ERROR(E::verification_metrics(at::tensor({0.1, NAN}, at::kDouble), same), "scores[1] is not finite");
  CHECK_ANGULAR_ERROR(E::verification_metrics(s, same, E::VerificationOptions().folds(1)), "folds");
  CHECK_ANGULAR_ERROR(E::verification_metrics(s, same, E::VerificationOptions().far({0.0})), "far must be in (0, 1]");
  CHECK_ANGULAR_ERROR(E::pair_similarities(at::ones({2, 3}), at::ones({3, 3})), "pairs need the same shape");
}
