#pragma once
// Retrieval metrics of embeddings, as defined in Musgrave, Belongie and Lim, "A Metric
// Learning Reality Check" (ECCV 2020), over cosine similarity. For a query with label y,
// the relevant references are those labelled y; R is their number. Neighbours are ranked by
// similarity, highest first, equal similarities by reference index, lowest first.
//   precision@1      the nearest reference is relevant
//   R-precision      r / R, r the relevant references among the R nearest
//   MAP@R            (1/R) Σ_{i=1..R} P(i)·rel(i), P(i) the precision of the i nearest
//   recall@k         a relevant reference is among the k nearest (the metric-learning recall@k)
//   reciprocal rank  1 / rank of the nearest relevant reference, over the whole ranking
// Each is a mean over the queries with R ≥ 1; queries with R = 0 are counted and left out.
//
//   auto m = angular::evaluation::retrieval_metrics(embeddings, labels);   // leave-one-out
//   auto m = angular::evaluation::retrieval_metrics(queries, query_labels, gallery, gallery_labels);

#include <angular/detail/checks.hpp>
#include <angular/detail/cpu/retrieval_search.hpp>
#include <angular/detail/reference.hpp>
#include <angular/detail/retrieval_search.hpp>

#include <ATen/ATen.h>
#include <torch/arg.h>

#include <limits>
#include <vector>

namespace angular::evaluation {

struct RetrievalOptions {
  /// The k of recall@k, each >= 1.
  TORCH_ARG(std::vector<int64_t>, recall_at) = std::vector<int64_t>{1, 2, 4, 8};
  /// References per chunk of similarities; 0 picks 2048 on the CPU, 16384 on other devices.
  TORCH_ARG(int64_t, chunk_size) = 0;
};

struct RetrievalMetrics {
  int64_t queries = 0;                   // queries with R >= 1: every mean is over them
  int64_t queries_without_relevant = 0;  // queries with R = 0, left out
  double precision_at_1 = std::numeric_limits<double>::quiet_NaN();
  double r_precision = std::numeric_limits<double>::quiet_NaN();
  double map_at_r = std::numeric_limits<double>::quiet_NaN();
  double mean_reciprocal_rank = std::numeric_limits<double>::quiet_NaN();
  std::vector<int64_t> recall_at;  // the options' k
  std::vector<double> recall;      // recall@k for each of them
};

}  // namespace angular::evaluation

namespace angular::detail {

/// Labels of any int64 values, one per embedding: check_label_tensor, made contiguous.
inline at::Tensor check_embedding_labels(const at::Tensor& labels, const char* name, const at::Tensor& embeddings,
                                         const char* embeddings_name) {
  check_label_tensor(labels, name, embeddings, embeddings_name);
  return labels.contiguous();
}

/// Unit rows in float32 (float64 for double input), after refusing rows without a direction.
inline at::Tensor unit_embeddings(const at::Tensor& x, const char* name) {
  check_floating_matrix(x, name);
  TORCH_CHECK(x.size(1) >= 1, "angular: ", name, " must have at least one column, got shape ", x.sizes());
  const at::Tensor converted = x.detach().to(compute_dtype(x));
  return l2_normalize_rows(check_direction_rows(converted, name)).contiguous();
}

inline evaluation::RetrievalMetrics retrieval(RetrievalProblem p, const evaluation::RetrievalOptions& options,
                                              bool use_kernel = true) {
  for (const int64_t k : options.recall_at())
    TORCH_CHECK(k >= 1, "angular: RetrievalOptions::recall_at must hold k >= 1, got ", k);
  TORCH_CHECK(options.chunk_size() >= 0, "angular: RetrievalOptions::chunk_size must be >= 1, or 0 to pick one, got ",
              options.chunk_size());
  const bool on_cpu = p.query.device().is_cpu();
  p.chunk = options.chunk_size() > 0 ? options.chunk_size() : (on_cpu ? 2048 : 16384);
  const at::Tensor sorted = std::get<0>(p.reference_labels.sort());
  at::Tensor relevant = at::searchsorted(sorted, p.query_labels, /*out_int32=*/false, /*right=*/true) -
                        at::searchsorted(sorted, p.query_labels);
  p.relevant = (p.leave_one_out ? relevant - 1 : relevant).cpu().contiguous();
  const RankedQueries ranked = on_cpu && use_kernel ? cpu::search(p) : search_with_aten(p, on_cpu ? 256 : 4096);

  evaluation::RetrievalMetrics m;
  m.recall_at = options.recall_at();
  m.recall.assign(m.recall_at.size(), 0);
  const int64_t* r = p.relevant.data_ptr<int64_t>();
  const int64_t* rank = ranked.first_relevant_rank.data_ptr<int64_t>();
  const double* r_precision = ranked.r_precision.data_ptr<double>();
  const double* map_at_r = ranked.map_at_r.data_ptr<double>();
  double precision_at_1 = 0, r_precision_sum = 0, map_sum = 0, reciprocal_sum = 0;
  for (int64_t q = 0; q < p.relevant.numel(); ++q) {  // in order: the sums do not depend on threads
    if (r[q] == 0) {
      ++m.queries_without_relevant;
      continue;
    }
    ++m.queries;
    precision_at_1 += rank[q] == 1;
    r_precision_sum += r_precision[q];
    map_sum += map_at_r[q];
    reciprocal_sum += 1.0 / static_cast<double>(rank[q]);
    for (size_t j = 0; j < m.recall_at.size(); ++j) m.recall[j] += rank[q] <= m.recall_at[j];
  }
  if (m.queries == 0) {
    m.recall.assign(m.recall_at.size(), std::numeric_limits<double>::quiet_NaN());
    return m;
  }
  const double n = static_cast<double>(m.queries);
  m.precision_at_1 = precision_at_1 / n;
  m.r_precision = r_precision_sum / n;
  m.map_at_r = map_sum / n;
  m.mean_reciprocal_rank = reciprocal_sum / n;
  for (double& recall : m.recall) recall /= n;
  return m;
}

inline RetrievalProblem retrieval_problem(const at::Tensor& query, const at::Tensor& query_labels,
                                          const at::Tensor& reference, const at::Tensor& reference_labels) {
  RetrievalProblem p;
  p.query = unit_embeddings(query, "query");
  p.reference = unit_embeddings(reference, "reference");
  TORCH_CHECK(query.size(1) == reference.size(1), "angular: query is ", query.sizes(), " but reference is ",
              reference.sizes(), "; both must have the same embedding size");
  check_same_device(query, "query", reference, "reference");
  p.query_labels = check_embedding_labels(query_labels, "query_labels", query, "query");
  p.reference_labels = check_embedding_labels(reference_labels, "reference_labels", reference, "reference");
  return p;
}

inline RetrievalProblem leave_one_out_problem(const at::Tensor& embeddings, const at::Tensor& labels) {
  RetrievalProblem p;
  p.query = p.reference = unit_embeddings(embeddings, "embeddings");
  p.query_labels = p.reference_labels = check_embedding_labels(labels, "labels", embeddings, "embeddings");
  p.leave_one_out = true;
  return p;
}

}  // namespace angular::detail

namespace angular::evaluation {

/// Queries [Q, D] with labels [Q] against references [N, D] with labels [N] (int64, any
/// values), on the CPU or any device; no [Q, N] matrix is formed.
inline RetrievalMetrics retrieval_metrics(const at::Tensor& query, const at::Tensor& query_labels,
                                          const at::Tensor& reference, const at::Tensor& reference_labels,
                                          const RetrievalOptions& options = {}) {
  return detail::retrieval(detail::retrieval_problem(query, query_labels, reference, reference_labels), options);
}

/// Every embedding [N, D] as a query against all the others (leave-one-out: a query is not
/// its own neighbour, and R counts the other embeddings with its label).
inline RetrievalMetrics retrieval_metrics(const at::Tensor& embeddings, const at::Tensor& labels,
                                          const RetrievalOptions& options = {}) {
  return detail::retrieval(detail::leave_one_out_problem(embeddings, labels), options);
}

}  // namespace angular::evaluation
