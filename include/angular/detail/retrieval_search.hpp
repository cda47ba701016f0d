#pragma once
// What the retrieval metrics need from a nearest-neighbour search, and the search in ATen
// operations (any device). Neighbours are ranked by cosine similarity, highest first, and
// equal similarities by reference index, lowest first; every metric follows that one ranking.
// A query with R relevant references needs only its R nearest (R-precision, MAP@R) and the
// rank of its nearest relevant one (P@1, recall@k, reciprocal rank): the search keeps R
// candidates per query, never a [Q, N] matrix. Where the nearest relevant reference is not
// among the R nearest, a second pass counts the references ranked before it.

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <limits>

namespace angular::detail {

/// A retrieval problem ready to search.
struct RetrievalProblem {
  at::Tensor query, reference;                // [Q, D], [N, D] unit rows, float or double, contiguous
  at::Tensor query_labels, reference_labels;  // int64, contiguous, on the embeddings' device
  at::Tensor relevant;                        // [Q] int64 on the CPU: R, references with the query's label
  bool leave_one_out = false;                 // query i is reference i, never its own neighbour
  int64_t chunk = 0;                          // references per chunk of similarities
};

/// What a search finds per query, on the CPU; entries of queries with R = 0 are unused.
struct RankedQueries {
  at::Tensor r_precision, map_at_r;  // [Q] float64, from the R nearest references
  at::Tensor first_relevant_rank;    // [Q] int64, from 1
  /// Where the nearest relevant reference is not among the R nearest: its similarity and
  /// index, for the second pass (rank 0 until then).
  at::Tensor best_relevant_value, best_relevant_index;  // [Q] float64, int64

  explicit RankedQueries(int64_t queries)
      : r_precision(at::zeros({queries}, at::kDouble)),
        map_at_r(at::zeros({queries}, at::kDouble)),
        first_relevant_rank(at::zeros({queries}, at::kLong)),
        best_relevant_value(at::zeros({queries}, at::kDouble)),
        best_relevant_index(at::zeros({queries}, at::kLong)) {}

  /// Queries still waiting for the second pass.
  at::Tensor unranked(const at::Tensor& relevant) const {
    return ((first_relevant_rank == 0) & (relevant > 0)).nonzero().squeeze(1);
  }
};

/// R-precision, AP@R and the position (from 1; 0 if absent) of the first relevant reference
/// among the R nearest, whose labels are `labels` in rank order:
///   R-precision = r / R with r the relevant ones among the R nearest;
///   AP@R = (1/R) Σ_{i ≤ R} P(i)·rel(i), P(i) the precision of the i nearest.
inline void score_nearest(const int64_t* labels, int64_t relevant, int64_t label, RankedQueries& out,
                          int64_t query) {
  int64_t hits = 0, first = 0;
  double precision_sum = 0;
  for (int64_t i = 0; i < relevant; ++i) {
    if (labels[i] != label) continue;
    ++hits;
    if (first == 0) first = i + 1;
    precision_sum += static_cast<double>(hits) / static_cast<double>(i + 1);
  }
  out.r_precision.data_ptr<double>()[query] = static_cast<double>(hits) / static_cast<double>(relevant);
  out.map_at_r.data_ptr<double>()[query] = precision_sum / static_cast<double>(relevant);
  out.first_relevant_rank.data_ptr<int64_t>()[query] = first;
}

/// The search in ATen operations, `query_chunk` queries at a time: per chunk of references,
/// the similarities, the best relevant one, and a stable sort of the candidates kept so far
/// with the chunk's (stable: on equal similarity the lower index stays first).
inline RankedQueries search_with_aten(const RetrievalProblem& p, int64_t query_chunk) {
  const int64_t queries = p.query.size(0), references = p.reference.size(0);
  RankedQueries out(queries);
  const at::Tensor relevant = p.relevant;
  const int64_t* r = relevant.data_ptr<int64_t>();
  const auto long_options = p.query_labels.options();
  const double lowest = -std::numeric_limits<double>::infinity();
  const int64_t no_index = std::numeric_limits<int64_t>::max();
  // Per chunk of references: (similarities, columns, whether each is relevant to the row).
  const auto for_each_chunk = [&](const at::Tensor& rows, const at::Tensor& row_labels,
                                  const at::Tensor& row_index, const auto& visit) {
    for (int64_t c0 = 0; c0 < references; c0 += p.chunk) {
      const int64_t c1 = std::min(references, c0 + p.chunk);
      at::Tensor sims = at::mm(rows, p.reference.slice(0, c0, c1).t());
      const at::Tensor columns = at::arange(c0, c1, long_options).unsqueeze(0);
      at::Tensor is_relevant = p.reference_labels.slice(0, c0, c1).unsqueeze(0) == row_labels.unsqueeze(1);
      if (p.leave_one_out) {
        const at::Tensor self = columns == row_index.unsqueeze(1);
        sims.masked_fill_(self, lowest);  // ranked after every cosine
        is_relevant &= self.logical_not();
      }
      visit(sims, columns.expand_as(sims), is_relevant);
    }
  };
  for (int64_t q0 = 0; q0 < queries; q0 += query_chunk) {
    const int64_t q1 = std::min(queries, q0 + query_chunk);
    const int64_t depth = q1 > q0 ? *std::max_element(r + q0, r + q1) : 0;
    if (depth == 0) continue;
    const at::Tensor rows = p.query.slice(0, q0, q1), row_labels = p.query_labels.slice(0, q0, q1);
    const at::Tensor row_index = at::arange(q0, q1, long_options);
    at::Tensor kept_values = at::empty({q1 - q0, 0}, rows.options());
    at::Tensor kept_index = at::empty({q1 - q0, 0}, long_options);
    at::Tensor best_value = at::full({q1 - q0}, lowest, rows.options());
    at::Tensor best_index = at::full({q1 - q0}, no_index, long_options);
    for_each_chunk(rows, row_labels, row_index, [&](const at::Tensor& sims, const at::Tensor& columns,
                                                    const at::Tensor& is_relevant) {
      const at::Tensor relevant_sims = sims.masked_fill(is_relevant.logical_not(), lowest);
      const at::Tensor chunk_best = std::get<0>(relevant_sims.max(1));
      const at::Tensor chunk_index =
          at::where(is_relevant & (relevant_sims == chunk_best.unsqueeze(1)), columns, no_index).amin(1);
      const at::Tensor better = chunk_best > best_value;  // strict: an earlier chunk wins a tie
      best_value = at::where(better, chunk_best, best_value);
      best_index = at::where(better, chunk_index, best_index);
      const auto [values, order] =
          at::sort(at::cat({kept_values, sims}, 1), /*stable=*/true, /*dim=*/1, /*descending=*/true);
      const int64_t keep = std::min<int64_t>(depth, values.size(1));
      kept_values = values.slice(1, 0, keep);
      kept_index = at::cat({kept_index, columns}, 1).gather(1, order.slice(1, 0, keep));
    });
    const at::Tensor neighbour_labels = p.reference_labels.index_select(0, kept_index.flatten())
                                            .view_as(kept_index).cpu().contiguous();
    const at::Tensor labels = row_labels.cpu().contiguous();
    for (int64_t q = q0; q < q1; ++q)
      if (r[q] > 0)
        score_nearest(neighbour_labels.data_ptr<int64_t>() + (q - q0) * depth, r[q],
                      labels.data_ptr<int64_t>()[q - q0], out, q);
    out.best_relevant_value.slice(0, q0, q1).copy_(best_value.cpu());
    out.best_relevant_index.slice(0, q0, q1).copy_(best_index.cpu());
  }
  // Second pass: the references ranked before each unranked query's best relevant one.
  const at::Tensor unranked = out.unranked(relevant);
  for (int64_t u0 = 0; u0 < unranked.numel(); u0 += query_chunk) {
    const at::Tensor which = unranked.slice(0, u0, std::min(unranked.numel(), u0 + query_chunk));
    const at::Tensor on_device = which.to(long_options.device());
    const at::Tensor value = out.best_relevant_value.index_select(0, which).to(p.query.options()).unsqueeze(1);
    const at::Tensor index = out.best_relevant_index.index_select(0, which).to(on_device.device()).unsqueeze(1);
    at::Tensor before = at::zeros({which.numel()}, long_options);
    for_each_chunk(p.query.index_select(0, on_device), p.query_labels.index_select(0, on_device), on_device,
                   [&](const at::Tensor& sims, const at::Tensor& columns, const at::Tensor&) {
                     before += ((sims > value) | ((sims == value) & (columns < index))).sum(1);
                   });
    out.first_relevant_rank.index_copy_(0, which, before.cpu() + 1);
  }
  return out;
}

}  // namespace angular::detail
