#include "sharded_evaluate.hpp"

#include <angular/evaluation/retrieval.hpp>
#include <angular/metrics.hpp>

#include <algorithm>
#include <limits>
#include <vector>

namespace train {

namespace ad = angular::distributed;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

/// Rows divided by their norms, floored at 1e-12 as F::normalize and the angle metrics floor them.
torch::Tensor unit_rows(const torch::Tensor& x) { return x / x.norm(2, /*dim=*/1, /*keepdim=*/true).clamp_min(1e-12); }

/// Σ ∠(a_i, b_j) over the rows of unit `a` [n, D] and `b` [m, D], without the diagonal
/// (a_i, b_i) where `same`; in row blocks of about 2^22 angles.
torch::Tensor angle_sum(const torch::Tensor& a, const torch::Tensor& b, bool same) {
  torch::Tensor sum = torch::zeros({}, a.options());
  const int64_t block = std::max<int64_t>(1, (int64_t{1} << 22) / std::max<int64_t>(b.size(0), 1));
  for (int64_t begin = 0; begin < a.size(0); begin += block) {
    const int64_t rows = std::min(block, a.size(0) - begin);
    const torch::Tensor angles = torch::acos(torch::matmul(a.narrow(0, begin, rows), b.t()).clamp(-1, 1));
    sum += angles.sum();
    if (same) sum -= angles.diagonal(begin).sum();
  }
  return sum;
}

/// The class vectors of this rank's classes [C_r, D] that the angles are measured to: the
/// shard's, or with sub-centers each class's nearest to the mean of its samples' unit features
/// (`features` [n, D] with local labels [n]), as LossHead::class_vectors chooses them.
torch::Tensor measured_vectors(const HeadShard& shard, const torch::Tensor& features, const torch::Tensor& local) {
  const torch::Tensor w = shard.weight().cpu().to(features.scalar_type());
  const int64_t K = shard.spec.vectors_per_class, count = shard.classes().count;
  if (K == 1 || count == 0) return w;
  const torch::Tensor means =
      torch::zeros({count, features.size(1)}, features.options()).index_add_(0, local, unit_rows(features));
  const torch::Tensor cosines =  // [C_r, K]: each class's sub-centers against its mean
      torch::bmm(unit_rows(w).view({count, K, -1}), unit_rows(means).unsqueeze(2)).squeeze(2);
  return w.index_select(0, cosines.argmax(1) + torch::arange(count, cosines.options().dtype(torch::kLong)) * K);
}

}  // namespace

double sharded_mean_pairwise_angle(const DataParallel& dp, const torch::Tensor& unit) {
  const torch::Tensor mine = unit.to(dp.device, torch::kDouble).contiguous();
  if (!dp.active()) {
    const int64_t n = mine.size(0);
    return n < 2 ? kNaN : angle_sum(mine, mine, true).item<double>() / static_cast<double>(n * (n - 1));
  }
  const torch::Tensor rows = ad::all_gather_values(dp.group, {mine.size(0)}, dp.device).select(1, 0);
  const int64_t n = rows.sum().item<int64_t>();
  torch::Tensor sum = torch::zeros({}, mine.options());
  for (int64_t r = 0; r < dp.size; ++r) {
    const int64_t count = rows[r].item<int64_t>();
    if (count == 0) continue;  // every rank knows it: no broadcast
    std::vector<torch::Tensor> visiting{r == dp.rank ? mine : torch::empty({count, mine.size(1)}, mine.options())};
    c10d::BroadcastOptions options;
    options.rootRank = r;
    dp.group->broadcast(visiting, options)->wait();
    if (mine.size(0) > 0) sum += angle_sum(mine, visiting[0], r == dp.rank);
  }
  ad::all_reduce_(dp.group, sum, c10d::ReduceOp::SUM);
  return n < 2 ? kNaN : sum.item<double>() / static_cast<double>(n * (n - 1));
}

std::optional<Evaluation> evaluate_sharded(const HeadShard& shard, const DataParallel& dp,
                                           const torch::Tensor& features, const torch::Tensor& labels, int64_t classes,
                                           int64_t batch_size) {
  torch::NoGradGuard no_grad;
  shard.module->eval();
  const torch::Device device = shard.module->weight.device();
  const auto range = shard.classes();
  Evaluation result;

  int64_t correct = 0;
  for (int64_t begin = 0; begin < features.size(0); begin += batch_size) {
    const int64_t end = std::min(features.size(0), begin + batch_size);
    correct += shard_predictions(shard, dp, features.slice(0, begin, end).to(device))
                   .cpu()
                   .eq(labels.slice(0, begin, end))
                   .sum()
                   .item<int64_t>();
  }
  result.accuracy = static_cast<double>(correct) / static_cast<double>(features.size(0));

  // The samples of this rank's classes, with labels counted from its first class.
  const torch::Tensor own = (labels >= range.offset) & (labels < range.offset + range.count);
  const torch::Tensor own_features = features.index({own}), local = labels.masked_select(own) - range.offset;
  const torch::Tensor vectors = measured_vectors(shard, own_features, local);

  // WCIntra and the intra-class angle from each rank's sums over its classes: Σ wc over the
  // classes with samples, their number, the samples, Σ samples · intra.
  torch::Tensor sums = torch::zeros({4}, torch::kDouble);
  torch::Tensor centers = torch::empty({0, features.size(1)}, torch::kDouble);  // unit, classes with samples
  torch::Tensor histogram = torch::zeros({range.count, kHistogramBins}, torch::kLong);
  if (range.count > 0) {
    angular::metrics::AngleStats stats(range.count, features.size(1));
    stats.update(own_features, local);
    const angular::metrics::AngleSummary mine = stats.compute(vectors);
    const torch::Tensor present = mine.counts > 0;
    const double samples = static_cast<double>(mine.counts.sum().item<int64_t>());
    sums[0] = mine.wc.masked_select(present).sum().item<double>();
    sums[1] = static_cast<double>(present.sum().item<int64_t>());
    sums[2] = samples;
    sums[3] = samples > 0 ? mine.intra * samples : 0.0;
    centers = unit_rows(stats.sums().cpu().index({present}));
    histogram = angular::metrics::angle_histogram(angular::metrics::target_angles(own_features, local, vectors), local,
                                                  range.count, kHistogramBins);
  }
  torch::Tensor totals = sums.to(dp.device);
  sum_over_ranks(dp, totals);
  totals = totals.cpu();
  const double present = totals[1].item<double>(), samples = totals[2].item<double>();
  result.angles.wc_intra = present > 0 ? totals[0].item<double>() / present : kNaN;
  result.angles.intra = samples > 0 ? totals[3].item<double>() / samples : kNaN;
  result.angles.empty_classes = classes - static_cast<int64_t>(present);
  result.angles.w_inter = classes >= 2 ? sharded_mean_pairwise_angle(dp, unit_rows(vectors.to(torch::kDouble))) : kNaN;
  result.angles.c_inter = sharded_mean_pairwise_angle(dp, centers);
  const std::vector<torch::Tensor> histograms = gather_to_root(dp, histogram.to(dp.device));
  if (!dp.writes()) return std::nullopt;

  result.histogram = torch::cat(histograms).cpu();
  result.retrieval = angular::evaluation::retrieval_metrics(features, labels);
  result.features = features;
  result.labels = labels;
  return result;
}

}  // namespace train
