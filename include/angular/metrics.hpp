#pragma once
// Angle metrics of the paper (eqs. 12-15, after the ArcFace paper), in radians:
//   WCIntra = mean_i ∠(W_i, x̄_i)            class vectors vs feature centers (compactness)
//   WInter  = mean_{i≠j} ∠(W_i, W_j)         separation of class vectors
//   CInter  = mean_{i≠j} ∠(x̄_i, x̄_j)         separation of feature centers
// x̄_i is the mean of the L2-normalised features of class i; classes without samples are left
// out of every mean and counted. Also target angles, their histograms, cosine-similarity
// matrices and top-k accuracy.
//
//   angular::metrics::AngleStats stats(num_classes, embedding_dim);
//   for (auto& [x, y] : batches) stats.update(model(x), y);    // any device, float64 sums
//   angular::metrics::AngleSummary s = stats.compute(loss->weight);

#include <angular/detail/checks.hpp>
#include <angular/detail/constants.hpp>
#include <angular/detail/cpu/parallel.hpp>
#include <angular/detail/reference.hpp>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include <cmath>
#include <limits>
#include <vector>

namespace angular::detail {

/// sums[y_i] += x_i / ‖x_i‖ for CPU features [B, D] (contiguous, any floating dtype), in
/// float64 straight from the input: one pass for the norms, one to accumulate, no [B, D]
/// temporary (index_add_ would need a float64 copy of the batch).
inline void add_unit_rows_cpu(const at::Tensor& features, const at::Tensor& labels, at::Tensor& sums) {
  const int64_t rows = features.size(0), dim = features.size(1);
  std::vector<double> inverse_norm(static_cast<size_t>(rows));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, features.scalar_type(), "angular_angle_stats", [&] {
    const scalar_t* x = features.data_ptr<scalar_t>();
    cpu::parallel_rows(rows, std::max<int64_t>(1, 4096 / dim), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        // Eight running sums, which the compiler keeps in vector registers.
        const scalar_t* row = x + i * dim;
        double lanes[8] = {};
        int64_t d = 0;
        for (; d + 8 <= dim; d += 8)
          for (int l = 0; l < 8; ++l) lanes[l] += static_cast<double>(row[d + l]) * static_cast<double>(row[d + l]);
        double squares = 0;
        for (; d < dim; ++d) squares += static_cast<double>(row[d]) * static_cast<double>(row[d]);
        for (double lane : lanes) squares += lane;
        // NaN marks a row with a NaN or an infinity (squares of finite floats fit a double).
        inverse_norm[i] = std::isfinite(squares) ? (squares > 0 ? 1 / std::sqrt(squares) : 0) : NAN;
      }
    });
    for (int64_t i = 0; i < rows; ++i) {
      TORCH_CHECK(!std::isnan(inverse_norm[i]), "angular: features row ", i,
                  " is not finite: its angle to anything is undefined");
      TORCH_CHECK(inverse_norm[i] > 0, "angular: features row ", i,
                  " has zero norm: its angle to anything is undefined");
    }
    const int64_t* y = labels.data_ptr<int64_t>();
    double* out = sums.data_ptr<double>();
    // Threads own column ranges, so no two write the same sum.
    cpu::parallel_rows(dim, 64, [&](int64_t begin, int64_t end) {
      for (int64_t i = 0; i < rows; ++i) {
        double* target = out + y[i] * dim;
        const scalar_t* row = x + i * dim;
        for (int64_t d = begin; d < end; ++d) target[d] += static_cast<double>(row[d]) * inverse_norm[i];
      }
    });
  });
}

/// Mean of ∠(a_i, a_j) over i ≠ j for unit rows a; NaN with fewer than two rows.
inline double mean_pairwise_angle(const at::Tensor& unit) {
  const int64_t n = unit.size(0);
  if (n < 2) return std::numeric_limits<double>::quiet_NaN();
  const at::Tensor angles = clamped_angle(at::matmul(unit, unit.t()), 0);
  const at::Tensor off_diagonal = angles.sum() - angles.diagonal().sum();
  return off_diagonal.item<double>() / static_cast<double>(n * (n - 1));
}

}  // namespace angular::detail

namespace angular::metrics {

/// WInter of class vectors `weight` [C, D] (C ≥ 2), radians.
inline double w_inter(const at::Tensor& weight) {
  detail::check_floating_matrix(weight, "weight");
  TORCH_CHECK(weight.size(0) >= 2, "angular: weight needs at least 2 classes for WInter, got ",
              weight.size(0));
  const at::Tensor w = detail::check_direction_rows(weight.to(at::kDouble), "weight");
  return detail::mean_pairwise_angle(detail::l2_normalize_rows(w));
}

/// θ_i = ∠(x_i, W_{y_i}) for features [B, D], labels [B], class vectors [C, D]: [B] radians.
inline at::Tensor target_angles(const at::Tensor& features, const at::Tensor& labels,
                                const at::Tensor& weight) {
  detail::check_features(features, weight, "weight");
  detail::check_labels(labels, "labels", features, "features", weight.size(0));
  const auto dtype = detail::compute_dtype(features, weight);
  const at::Tensor x =
      detail::l2_normalize_rows(detail::check_direction_rows(features.to(dtype), "features"));
  const at::Tensor w =
      detail::l2_normalize_rows(detail::check_direction_rows(weight.to(dtype), "weight"))
          .index_select(0, labels);
  return detail::clamped_angle((x * w).sum(1), 0);
}

/// Counts [C, bins] of `angles` [B] per class `labels` [B], bins of width max_angle / bins
/// over [0, max_angle); angles beyond the range count in the last bin, below in the first.
inline at::Tensor angle_histogram(const at::Tensor& angles, const at::Tensor& labels,
                                  int64_t num_classes, int64_t bins,
                                  double max_angle = angular::kPi) {
  TORCH_CHECK(angles.dim() == 1 && at::isFloatingType(angles.scalar_type()),
              "angular: angles must be a 1-D floating-point tensor, got ", angles.scalar_type(),
              " of shape ", angles.sizes());
  TORCH_CHECK(num_classes >= 1, "angular: num_classes must be >= 1, got ", num_classes);
  TORCH_CHECK(bins >= 1, "angular: bins must be >= 1, got ", bins);
  detail::check_hyperparameter("max_angle", max_angle, max_angle > 0, "a finite number > 0");
  detail::check_labels(labels, "labels", angles, "angles", num_classes);
  const at::Tensor bin = (angles.to(at::kDouble) * (static_cast<double>(bins) / max_angle))
                             .floor()
                             .clamp(0, static_cast<double>(bins - 1))
                             .to(at::kLong);
  return at::bincount(labels * bins + bin, {}, num_classes * bins).view({num_classes, bins});
}

/// Cosine similarities [N, N] of the L2-normalised features [N, D] (paper eq. 15, Fig. 8).
inline at::Tensor cosine_similarity_matrix(const at::Tensor& features) {
  detail::check_floating_matrix(features, "features");
  const at::Tensor x = detail::l2_normalize_rows(
      detail::check_direction_rows(features.to(detail::compute_dtype(features)), "features"));
  return at::matmul(x, x.t());
}

/// Fraction of samples whose label is among the k largest logits [B, C].
inline double top_k_accuracy(const at::Tensor& logits, const at::Tensor& labels, int64_t k = 1) {
  detail::check_floating_matrix(logits, "logits");
  TORCH_CHECK(k >= 1 && k <= logits.size(1), "angular: k must be in [1, ", logits.size(1),
              "], got ", k);
  detail::check_labels(labels, "labels", logits, "logits", logits.size(1));
  if (logits.size(0) == 0) return std::numeric_limits<double>::quiet_NaN();
  const at::Tensor top = std::get<1>(logits.topk(k, /*dim=*/1));
  return (top == labels.unsqueeze(1)).any(1).to(at::kDouble).mean().item<double>();
}

/// What AngleStats::compute returns. Angles in radians.
struct AngleSummary {
  double wc_intra = 0;  // mean over classes with samples of ∠(W_i, x̄_i)
  double w_inter = 0;   // mean over all class pairs of ∠(W_i, W_j)
  double c_inter = 0;   // mean over pairs of classes with samples of ∠(x̄_i, x̄_j); NaN if < 2
  /// Sample-weighted mean over classes of arccos(‖x̄_i‖): the angle whose cosine is the mean
  /// cosine between a sample and its class center direction (Σ_k x̂_k·x̄/‖x̄‖ / n = ‖x̄‖).
  /// A running formula, exact from the sums alone; the mean angle itself would need the
  /// centers first and a second pass.
  double intra = 0;
  at::Tensor wc;      // [C] float64 ∠(W_i, x̄_i); NaN for classes without samples
  at::Tensor counts;  // [C] int64 samples per class
  int64_t empty_classes = 0;
  at::Tensor centers;  // [C, D] float64 x̄_i (zero rows for classes without samples)
};

/// Streaming accumulator of per-class sums of L2-normalised features (float64, on the
/// features' device) and counts: no per-sample storage. Two accumulators merge, so workers
/// of a data-parallel run can combine theirs.
class AngleStats {
 public:
  AngleStats(int64_t num_classes, int64_t embedding_dim)
      : num_classes_(num_classes), embedding_dim_(embedding_dim) {
    TORCH_CHECK(num_classes >= 1, "angular: AngleStats num_classes must be >= 1, got ", num_classes);
    TORCH_CHECK(embedding_dim >= 1, "angular: AngleStats embedding_dim must be >= 1, got ",
                embedding_dim);
    reset();
  }

  int64_t num_classes() const { return num_classes_; }
  int64_t embedding_dim() const { return embedding_dim_; }
  at::Device device() const { return sums_.device(); }
  const at::Tensor& sums() const { return sums_; }
  const at::Tensor& counts() const { return counts_; }

  /// Forgets every sample (and the device: the next update sets it).
  void reset() {
    sums_ = at::zeros({num_classes_, embedding_dim_}, at::kDouble);
    counts_ = at::zeros({num_classes_}, at::kLong);
    seen_ = false;
  }

  /// Adds features [B, D] (any floating dtype) with labels [B] in [0, C).
  void update(const at::Tensor& features, const at::Tensor& labels) {
    detail::check_floating_matrix(features, "features");
    TORCH_CHECK(features.size(1) == embedding_dim_, "angular: features must be [B, ",
                embedding_dim_, "], got ", features.sizes());
    detail::check_labels(labels, "labels", features, "features", num_classes_);
    adopt_device(features.device());
    if (features.device().is_cpu()) {
      detail::add_unit_rows_cpu(features.contiguous(), labels.contiguous(), sums_);
    } else {
      const at::Tensor x = detail::check_direction_rows(features.to(at::kDouble), "features");
      sums_.index_add_(0, labels, detail::l2_normalize_rows(x));
    }
    counts_ += at::bincount(labels, {}, num_classes_);
    seen_ = true;
  }

  /// Adds another accumulator's samples.
  void merge(const AngleStats& other) {
    TORCH_CHECK(other.num_classes_ == num_classes_ && other.embedding_dim_ == embedding_dim_,
                "angular: cannot merge AngleStats(", other.num_classes_, ", ", other.embedding_dim_,
                ") into AngleStats(", num_classes_, ", ", embedding_dim_, ")");
    if (!other.seen_) return;
    adopt_device(other.device());
    sums_ += other.sums_;
    counts_ += other.counts_;
    seen_ = true;
  }

  /// The statistics against class vectors `weight` [C, D].
  AngleSummary compute(const at::Tensor& weight) const {
    detail::check_floating_matrix(weight, "weight");
    TORCH_CHECK(weight.size(0) == num_classes_ && weight.size(1) == embedding_dim_,
                "angular: weight must be [", num_classes_, ", ", embedding_dim_, "], got ",
                weight.sizes());
    const at::Tensor w = detail::l2_normalize_rows(
        detail::check_direction_rows(weight.to(sums_.device(), at::kDouble), "weight"));
    AngleSummary out;
    out.counts = counts_.cpu();
    const at::Tensor present = counts_ > 0;
    out.empty_classes = num_classes_ - present.sum().item<int64_t>();
    out.centers = (sums_ / counts_.clamp_min(1).unsqueeze(1).to(at::kDouble)).cpu();
    // Directions of the centers; a center of norm 0 (samples cancelling out) is orthogonal
    // to everything, as F::normalize's 1e-12 floor makes it.
    const at::Tensor center_norms = sums_.norm(2, 1, true);
    const at::Tensor center_dirs = sums_ / center_norms.clamp_min(detail::kNormEps);
    const at::Tensor wc = detail::clamped_angle((w * center_dirs).sum(1), 0);
    out.wc = at::where(present, wc, at::full_like(wc, std::numeric_limits<double>::quiet_NaN())).cpu();
    const at::Tensor kept = present.nonzero().squeeze(1);
    const int64_t kept_count = kept.numel();
    out.wc_intra = kept_count > 0 ? wc.index_select(0, kept).mean().item<double>()
                                  : std::numeric_limits<double>::quiet_NaN();
    out.w_inter = num_classes_ >= 2 ? detail::mean_pairwise_angle(w)
                                    : std::numeric_limits<double>::quiet_NaN();
    out.c_inter = detail::mean_pairwise_angle(center_dirs.index_select(0, kept));
    // ‖x̄_i‖ = ‖sum_i‖ / n_i, the mean cosine to the center direction.
    const at::Tensor counts = counts_.to(at::kDouble);
    const at::Tensor mean_cos = center_norms.squeeze(1) / counts.clamp_min(1);
    const double samples = counts.sum().item<double>();
    out.intra = samples > 0 ? (detail::clamped_angle(mean_cos, 0) * counts).sum().item<double>() / samples
                            : std::numeric_limits<double>::quiet_NaN();
    return out;
  }

 private:
  void adopt_device(at::Device device) {
    if (device == sums_.device()) return;
    TORCH_CHECK(!seen_, "angular: AngleStats holds samples on ", sums_.device(),
                "; features on ", device, " cannot join them");
    sums_ = sums_.to(device);
    counts_ = counts_.to(device);
  }

  int64_t num_classes_, embedding_dim_;
  at::Tensor sums_, counts_;
  bool seen_ = false;
};

}  // namespace angular::metrics
