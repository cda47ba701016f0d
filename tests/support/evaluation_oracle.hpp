#pragma once
// Brute-force float64 answers to the retrieval and verification metrics, written from their
// definitions with plain loops over every pair: the oracle of tests/evaluation_test.cpp and
// of the CUDA test.

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace testing::oracle {

struct Retrieval {
  int64_t queries = 0, without_relevant = 0;
  double p1 = 0, r_precision = 0, map_at_r = 0, mrr = 0;
  std::vector<double> recall;
};

inline std::vector<std::vector<double>> unit_rows(const at::Tensor& x) {
  const at::Tensor d = x.to(at::kDouble).contiguous();
  std::vector<std::vector<double>> rows(static_cast<size_t>(d.size(0)), std::vector<double>(d.size(1)));
  for (int64_t i = 0; i < d.size(0); ++i) {
    double norm = 0;
    for (int64_t k = 0; k < d.size(1); ++k) norm += d[i][k].item<double>() * d[i][k].item<double>();
    for (int64_t k = 0; k < d.size(1); ++k) rows[i][k] = d[i][k].item<double>() / std::sqrt(norm);
  }
  return rows;
}

/// `self`: query i is reference i and is skipped.
inline Retrieval retrieval(const at::Tensor& query, const at::Tensor& query_labels, const at::Tensor& reference,
                           const at::Tensor& reference_labels, const std::vector<int64_t>& ks, bool self) {
  const auto q = unit_rows(query), r = unit_rows(reference);
  Retrieval out;
  out.recall.assign(ks.size(), 0);
  for (size_t i = 0; i < q.size(); ++i) {
    const int64_t label = query_labels[i].item<int64_t>();
    std::vector<std::pair<double, int64_t>> ranked;  // (−similarity, index): ascending = ranking order
    int64_t relevant = 0;
    for (size_t j = 0; j < r.size(); ++j) {
      if (self && j == i) continue;
      double dot = 0;
      for (size_t k = 0; k < q[i].size(); ++k) dot += q[i][k] * r[j][k];
      ranked.push_back({-dot, static_cast<int64_t>(j)});
      relevant += reference_labels[j].item<int64_t>() == label;
    }
    if (relevant == 0) {
      ++out.without_relevant;
      continue;
    }
    std::sort(ranked.begin(), ranked.end());
    const auto is_relevant = [&](size_t position) {
      return reference_labels[ranked[position].second].item<int64_t>() == label;
    };
    int64_t hits = 0, first = 0;
    double ap = 0;
    for (size_t p = 0; p < ranked.size(); ++p) {
      if (!is_relevant(p)) continue;
      if (first == 0) first = static_cast<int64_t>(p) + 1;
      if (static_cast<int64_t>(p) < relevant) ap += static_cast<double>(++hits) / static_cast<double>(p + 1);
    }
    ++out.queries;
    out.p1 += first == 1;
    out.r_precision += static_cast<double>(hits) / static_cast<double>(relevant);
    out.map_at_r += ap / static_cast<double>(relevant);
    out.mrr += 1.0 / static_cast<double>(first);
    for (size_t k = 0; k < ks.size(); ++k) out.recall[k] += first <= ks[k];
  }
  const double n = static_cast<double>(out.queries);
  out.p1 /= n, out.r_precision /= n, out.map_at_r /= n, out.mrr /= n;
  for (double& v : out.recall) v /= n;
  return out;
}

/// P(genuine score > impostor score) + ½ P(equal), over every genuine-impostor pair.
inline double auc(const std::vector<double>& scores, const std::vector<bool>& same) {
  double wins = 0, pairs = 0;
  for (size_t a = 0; a < scores.size(); ++a)
    for (size_t b = 0; b < scores.size(); ++b)
      if (same[a] && !same[b]) {
        pairs += 1;
        wins += scores[a] > scores[b] ? 1 : scores[a] == scores[b] ? 0.5 : 0;
      }
  return wins / pairs;
}

/// Over every threshold in the scores and +inf: the highest TAR whose FAR is <= far.
inline double tar_at_far(const std::vector<double>& scores, const std::vector<bool>& same, double far) {
  std::vector<double> thresholds = scores;
  thresholds.push_back(std::numeric_limits<double>::infinity());
  double best = 0;
  for (double t : thresholds) {
    double genuine = 0, impostor = 0, accepted_genuine = 0, accepted_impostor = 0;
    for (size_t i = 0; i < scores.size(); ++i) {
      (same[i] ? genuine : impostor) += 1;
      if (scores[i] >= t) (same[i] ? accepted_genuine : accepted_impostor) += 1;
    }
    if (accepted_impostor / impostor <= far) best = std::max(best, accepted_genuine / genuine);
  }
  return best;
}

/// Accuracy of the pairs [begin, end) when accepting scores >= t.
inline double accuracy(const std::vector<double>& s, const std::vector<bool>& same, size_t begin, size_t end,
                       double t) {
  double right = 0;
  for (size_t i = begin; i < end; ++i) right += (s[i] >= t) == same[i];
  return right / static_cast<double>(end - begin);
}

/// The 10-fold protocol by brute force: per fold, every candidate threshold on the rest.
inline double fold_accuracy(const std::vector<double>& s, const std::vector<bool>& same, size_t folds) {
  double total = 0;
  for (size_t f = 0; f < folds; ++f) {
    const size_t begin = f * s.size() / folds, end = (f + 1) * s.size() / folds;
    std::vector<double> rest_s;
    std::vector<bool> rest_same;
    for (size_t i = 0; i < s.size(); ++i)
      if (i < begin || i >= end) rest_s.push_back(s[i]), rest_same.push_back(same[i]);
    double best_t = std::numeric_limits<double>::infinity();
    double best = accuracy(rest_s, rest_same, 0, rest_s.size(), best_t);
    for (double t : rest_s) {
      const double a = accuracy(rest_s, rest_same, 0, rest_s.size(), t);
      if (a > best || (a == best && t > best_t)) best = a, best_t = t;
    }
    total += accuracy(s, same, begin, end, best_t);
  }
  return total / static_cast<double>(folds);
}

}  // namespace testing::oracle
