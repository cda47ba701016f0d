#pragma once
// The test-set evaluation of a data-parallel run without the class vectors of every class in
// one place: each rank predicts and measures over its own classes, and the ranks combine what
// the single-process evaluation (evaluate_features) computes over all of them — the predicted
// class by an all-reduce of each rank's best, the angle metrics from per-rank sums, WInter and
// CInter from the ranks' vectors visiting each other in turn, the histograms rank by rank.

#include "data_parallel.hpp"
#include "evaluate.hpp"
#include "sharded_head.hpp"

#include <torch/torch.h>

#include <optional>

namespace train {

/// The evaluation of test features [N, D] with labels [N] of `classes` classes (both on the
/// CPU, the same on every rank) under every rank's shard of the head. Every rank calls it; rank
/// 0 gets what evaluate_features gives with a single-process head holding the same vectors
/// (up to the order of float64 sums in the angles), but for AngleSummary's per-class fields
/// (wc, counts, centers), left undefined; the other ranks get nullopt.
std::optional<Evaluation> evaluate_sharded(const HeadShard& shard, const DataParallel& dp,
                                           const torch::Tensor& features, const torch::Tensor& labels, int64_t classes,
                                           int64_t batch_size = 1000);

/// The mean of ∠(a_i, a_j) over i ≠ j of the unit rows a of every rank, `unit` [n_r, D]
/// (float64) this rank's; NaN with fewer than two rows in all. Each rank's rows are broadcast
/// in turn, so a rank holds its own and one other's at a time. Every rank calls it.
double sharded_mean_pairwise_angle(const DataParallel& dp, const torch::Tensor& unit);

}  // namespace train
