#pragma once
// Verification metrics: is a pair of embeddings the same identity? A pair is accepted when
// its score (cosine similarity) is >= the threshold. Genuine pairs share a label, impostor
// pairs do not; TAR (= TPR) is the fraction of genuine pairs accepted, FAR (= FPR) that of
// impostor pairs.
//   ROC        one point per distinct score, thresholds descending, from (+inf: FAR = TAR = 0)
//   TAR@FAR=f  the TAR of the lowest threshold whose FAR is <= f (a threshold one can use: no
//              interpolation); NaN where fewer than 1/f impostor pairs make f unmeasurable
//   EER        where FAR = 1 − TAR, linearly interpolated between the two ROC points around it
//   AUC        the area under the ROC's points joined by straight lines (ties count ½)
//   accuracy   LFW's protocol: the pairs in `folds` consecutive folds (LFW's 10 sets of 600);
//              per fold the threshold, one of the other folds' scores, that classifies those
//              best (the highest among equals), applied to the fold; mean and population
//              standard deviation over the folds
//
//   auto pairs = angular::evaluation::all_pairs(embeddings, labels);    // or pair_similarities(a, b)
//   auto v = angular::evaluation::verification_metrics(pairs.scores, pairs.same);

#include <angular/detail/checks.hpp>
#include <angular/evaluation/retrieval.hpp>

#include <ATen/ATen.h>
#include <torch/arg.h>

#include <cmath>
#include <limits>
#include <vector>

namespace angular::evaluation {

struct VerificationOptions {
  /// The FARs of TAR@FAR, each in (0, 1].
  TORCH_ARG(std::vector<double>, far) = std::vector<double>{1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1};
  /// Folds of the accuracy protocol, >= 2.
  TORCH_ARG(int64_t, folds) = 10;
};

struct Roc {
  at::Tensor thresholds;  // [T] float64, descending, the first +inf
  at::Tensor tpr, fpr;    // [T] float64, fractions of genuine / impostor pairs with score >= threshold
};

struct VerificationMetrics {
  int64_t genuine_pairs = 0, impostor_pairs = 0;
  Roc roc;
  std::vector<double> far, tar;  // TAR at each of the options' FARs
  double eer = std::numeric_limits<double>::quiet_NaN();
  double auc = std::numeric_limits<double>::quiet_NaN();
  double accuracy = std::numeric_limits<double>::quiet_NaN();      // mean over the folds
  double accuracy_std = std::numeric_limits<double>::quiet_NaN();  // population std over the folds
};

/// Scores and genuine flags of pairs.
struct Pairs {
  at::Tensor scores;  // [P] floating
  at::Tensor same;    // [P] bool
};

/// Cosine similarity of each row pair (a_i, b_i), [P] float32 (float64 for double input).
inline at::Tensor pair_similarities(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = detail::unit_embeddings(a, "a"), y = detail::unit_embeddings(b, "b");
  TORCH_CHECK(a.sizes() == b.sizes(), "angular: a is ", a.sizes(), " but b is ", b.sizes(),
              "; pairs need the same shape");
  detail::check_same_device(a, "a", b, "b");
  return (x * y).sum(1);
}

/// Every pair i < j of embeddings [N, D] with labels [N], in row-major order of (i, j):
/// N(N − 1)/2 scores, `chunk` rows of similarities at a time.
inline Pairs all_pairs(const at::Tensor& embeddings, const at::Tensor& labels, int64_t chunk = 1024) {
  const at::Tensor x = detail::unit_embeddings(embeddings, "embeddings");
  const at::Tensor y = detail::check_embedding_labels(labels, "labels", embeddings, "embeddings");
  TORCH_CHECK(chunk >= 1, "angular: all_pairs chunk must be >= 1, got ", chunk);
  const int64_t n = x.size(0);
  Pairs out{at::empty({n * (n - 1) / 2}, x.options()), at::empty({n * (n - 1) / 2}, y.options().dtype(at::kBool))};
  for (int64_t i0 = 0; i0 + 1 < n; i0 += chunk) {
    const int64_t i1 = std::min(n - 1, i0 + chunk);
    // Row i's partners j > i are columns j − i0 − 1 of the block's products with rows i0 + 1...
    const at::Tensor sims = at::mm(x.slice(0, i0, i1), x.slice(0, i0 + 1).t());
    const at::Tensor same = y.slice(0, i0, i1).unsqueeze(1) == y.slice(0, i0 + 1).unsqueeze(0);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t offset = i * n - i * (i + 1) / 2, t = i - i0;
      out.scores.slice(0, offset, offset + n - 1 - i).copy_(sims[t].slice(0, t));
      out.same.slice(0, offset, offset + n - 1 - i).copy_(same[t].slice(0, t));
    }
  }
  return out;
}

}  // namespace angular::evaluation

namespace angular::detail {

/// Scores in descending order, with the number of genuine and impostor pairs at each
/// distinct score.
struct ScoreGroups {
  std::vector<double> score;
  std::vector<int64_t> genuine, impostor;
  int64_t genuine_total = 0, impostor_total = 0;
};

inline ScoreGroups score_groups(const at::Tensor& scores, const at::Tensor& same) {
  const auto [sorted, order] = scores.to(at::kDouble).sort(/*stable=*/false, /*dim=*/0, /*descending=*/true);
  const at::Tensor flags = same.index_select(0, order).contiguous();
  const double* s = sorted.data_ptr<double>();
  const bool* g = flags.data_ptr<bool>();
  ScoreGroups out;
  for (int64_t i = 0; i < sorted.numel(); ++i) {
    if (i == 0 || s[i] != s[i - 1]) {
      out.score.push_back(s[i]);
      out.genuine.push_back(0);
      out.impostor.push_back(0);
    }
    ++(g[i] ? out.genuine.back() : out.impostor.back());
    ++(g[i] ? out.genuine_total : out.impostor_total);
  }
  return out;
}

/// The fraction of `scores` classified right by accepting those >= `threshold`.
inline double accuracy_at(const at::Tensor& scores, const at::Tensor& same, double threshold) {
  return ((scores.to(at::kDouble) >= threshold) == same).to(at::kDouble).mean().item<double>();
}

/// The threshold, +inf or one of the scores, that classifies the pairs best; the highest
/// among equals.
inline double best_threshold(const ScoreGroups& groups) {
  int64_t accepted_genuine = 0, accepted_impostor = 0, best_correct = groups.impostor_total;
  double best = std::numeric_limits<double>::infinity();
  for (size_t k = 0; k < groups.score.size(); ++k) {
    accepted_genuine += groups.genuine[k];
    accepted_impostor += groups.impostor[k];
    const int64_t correct = accepted_genuine + groups.impostor_total - accepted_impostor;
    if (correct > best_correct) best_correct = correct, best = groups.score[k];
  }
  return best;
}

inline void fold_accuracy(const at::Tensor& scores, const at::Tensor& same, int64_t folds,
                          evaluation::VerificationMetrics& m) {
  const int64_t pairs = scores.numel();
  if (pairs < folds) return;
  std::vector<double> accuracy;
  for (int64_t f = 0; f < folds; ++f) {
    const int64_t begin = f * pairs / folds, end = (f + 1) * pairs / folds;
    const at::Tensor rest = at::cat({at::arange(0, begin, at::kLong), at::arange(end, pairs, at::kLong)});
    const double threshold = best_threshold(score_groups(scores.index_select(0, rest), same.index_select(0, rest)));
    accuracy.push_back(accuracy_at(scores.slice(0, begin, end), same.slice(0, begin, end), threshold));
  }
  double sum = 0, squares = 0;
  for (double a : accuracy) sum += a;
  m.accuracy = sum / static_cast<double>(folds);
  for (double a : accuracy) squares += (a - m.accuracy) * (a - m.accuracy);
  m.accuracy_std = std::sqrt(squares / static_cast<double>(folds));
}

}  // namespace angular::detail

namespace angular::evaluation {

/// The ROC of pairs with `scores` [P] (floating, finite) and genuine flags `same` [P] (bool).
inline Roc roc_curve(const at::Tensor& scores, const at::Tensor& same) {
  const detail::ScoreGroups groups = detail::score_groups(scores, same);
  const int64_t points = static_cast<int64_t>(groups.score.size()) + 1;
  Roc roc{at::empty({points}, at::kDouble), at::empty({points}, at::kDouble), at::empty({points}, at::kDouble)};
  double* threshold = roc.thresholds.data_ptr<double>();
  double* tpr = roc.tpr.data_ptr<double>();
  double* fpr = roc.fpr.data_ptr<double>();
  const double genuine = static_cast<double>(groups.genuine_total);
  const double impostor = static_cast<double>(groups.impostor_total);
  int64_t accepted_genuine = 0, accepted_impostor = 0;
  threshold[0] = std::numeric_limits<double>::infinity();
  tpr[0] = fpr[0] = 0;
  for (int64_t k = 1; k < points; ++k) {
    accepted_genuine += groups.genuine[k - 1];
    accepted_impostor += groups.impostor[k - 1];
    threshold[k] = groups.score[k - 1];
    tpr[k] = genuine > 0 ? static_cast<double>(accepted_genuine) / genuine : std::nan("");
    fpr[k] = impostor > 0 ? static_cast<double>(accepted_impostor) / impostor : std::nan("");
  }
  return roc;
}

inline VerificationMetrics verification_metrics(const at::Tensor& scores, const at::Tensor& same,
                                                const VerificationOptions& options = {}) {
  TORCH_CHECK(scores.defined() && scores.dim() == 1 && at::isFloatingType(scores.scalar_type()),
              "angular: scores must be a 1-D floating-point tensor");
  TORCH_CHECK(same.defined() && same.scalar_type() == at::kBool && same.sizes() == scores.sizes(),
              "angular: same must be a bool tensor of the shape of scores ", scores.sizes());
  TORCH_CHECK(options.folds() >= 2, "angular: VerificationOptions::folds must be >= 2, got ", options.folds());
  for (const double f : options.far())
    detail::check_hyperparameter("VerificationOptions::far", f, f > 0 && f <= 1, "in (0, 1]");
  const at::Tensor s = scores.detach().cpu().contiguous(), g = same.cpu().contiguous();
  const at::Tensor not_finite = at::isfinite(s).logical_not().nonzero();
  TORCH_CHECK(not_finite.numel() == 0, "angular: scores[", not_finite.numel() ? not_finite[0][0].item<int64_t>() : 0,
              "] is not finite");
  VerificationMetrics m;
  m.genuine_pairs = g.sum().item<int64_t>();
  m.impostor_pairs = g.numel() - m.genuine_pairs;
  m.roc = roc_curve(s, g);
  m.far = options.far();
  m.tar.assign(m.far.size(), std::numeric_limits<double>::quiet_NaN());
  if (m.genuine_pairs == 0 || m.impostor_pairs == 0) return m;
  const double* tpr = m.roc.tpr.data_ptr<double>();
  const double* fpr = m.roc.fpr.data_ptr<double>();
  const int64_t points = m.roc.tpr.numel();
  for (size_t j = 0; j < m.far.size(); ++j) {
    if (static_cast<double>(m.impostor_pairs) * m.far[j] < 1) continue;
    for (int64_t k = 0; k < points && fpr[k] <= m.far[j]; ++k) m.tar[j] = tpr[k];
  }
  // FNR − FPR falls from 1 at the first point to −1 at the last.
  for (int64_t k = 1; k < points; ++k) {
    const double before = (1 - tpr[k - 1]) - fpr[k - 1], after = (1 - tpr[k]) - fpr[k];
    if (after > 0) continue;
    const double t = before / (before - after);
    m.eer = fpr[k - 1] + t * (fpr[k] - fpr[k - 1]);
    break;
  }
  m.auc = 0;
  for (int64_t k = 1; k < points; ++k) m.auc += (fpr[k] - fpr[k - 1]) * (tpr[k] + tpr[k - 1]) / 2;
  detail::fold_accuracy(s, g, options.folds(), m);
  return m;
}

}  // namespace angular::evaluation
