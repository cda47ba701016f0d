#pragma once
// angular's evaluation and angle metrics as operators (angular_ops.cpp registers them): plain
// functions of tensors and numbers, no autograd, run where their inputs are; and the paper's
// streaming angle statistics as a TorchScript class, torch.classes.angular.AngleStats.

#include <angular/evaluation.hpp>
#include <angular/metrics.hpp>

#include <torch/custom_class.h>
#include <torch/library.h>

#include <tuple>
#include <vector>

namespace angular::ops {

using RetrievalResult = std::tuple<double, double, double, double, std::vector<int64_t>, std::vector<double>>;

/// (precision_at_1, r_precision, map_at_r, mean_reciprocal_rank, recall_at, recall); without
/// references, leave-one-out over the queries.
inline RetrievalResult retrieval_metrics(const at::Tensor& query, const at::Tensor& query_labels,
                                         const std::optional<at::Tensor>& reference,
                                         const std::optional<at::Tensor>& reference_labels,
                                         c10::ArrayRef<int64_t> recall_at, int64_t chunk_size) {
  TORCH_CHECK(reference.has_value() == reference_labels.has_value(),
              "angular: give references with their labels, or neither (leave-one-out)");
  const auto options = evaluation::RetrievalOptions().recall_at(recall_at.vec()).chunk_size(chunk_size);
  const evaluation::RetrievalMetrics m =
      reference ? evaluation::retrieval_metrics(query, query_labels, *reference, *reference_labels, options)
                : evaluation::retrieval_metrics(query, query_labels, options);
  return {m.precision_at_1, m.r_precision, m.map_at_r, m.mean_reciprocal_rank, m.recall_at, m.recall};
}

using VerificationResult = std::tuple<int64_t, int64_t, at::Tensor, at::Tensor, at::Tensor, std::vector<double>,
                                      std::vector<double>, double, double, double, double>;

/// (genuine_pairs, impostor_pairs, thresholds, tpr, fpr, far, tar, eer, auc, accuracy,
/// accuracy_std) of pair scores [P] and genuine flags [P].
inline VerificationResult verification_metrics(const at::Tensor& scores, const at::Tensor& same,
                                               c10::ArrayRef<double> far, int64_t folds) {
  const auto m =
      evaluation::verification_metrics(scores, same, evaluation::VerificationOptions().far(far.vec()).folds(folds));
  return {m.genuine_pairs, m.impostor_pairs, m.roc.thresholds, m.roc.tpr, m.roc.fpr, m.far, m.tar, m.eer,
          m.auc,           m.accuracy,       m.accuracy_std};
}

inline std::tuple<at::Tensor, at::Tensor> all_pairs(const at::Tensor& embeddings, const at::Tensor& labels) {
  const evaluation::Pairs p = evaluation::all_pairs(embeddings, labels);
  return {p.scores, p.same};
}

/// metrics::AngleStats for TorchScript and Python; compute() gives (wc_intra, w_inter, c_inter,
/// intra, wc, counts, empty_classes, centers).
struct AngleStatsClass : torch::CustomClassHolder {
  AngleStatsClass(int64_t num_classes, int64_t embedding_dim) : stats(num_classes, embedding_dim) {}
  metrics::AngleStats stats;
};

using AngleSummaryResult = std::tuple<double, double, double, double, at::Tensor, at::Tensor, int64_t, at::Tensor>;

inline void register_evaluation(torch::Library& m) {
  m.def(
      "retrieval_metrics(Tensor query, Tensor query_labels, Tensor? reference, Tensor? reference_labels, "
      "int[] recall_at, int chunk_size) -> (float, float, float, float, int[], float[])",
      &retrieval_metrics);
  m.def(
      "verification_metrics(Tensor scores, Tensor same, float[] far, int folds) "
      "-> (int, int, Tensor, Tensor, Tensor, float[], float[], float, float, float, float)",
      &verification_metrics);
  m.def("all_pairs(Tensor embeddings, Tensor labels) -> (Tensor, Tensor)", &all_pairs);
  m.def("pair_similarities(Tensor a, Tensor b) -> Tensor", &evaluation::pair_similarities);
  m.def("target_angles(Tensor features, Tensor labels, Tensor weight) -> Tensor", &metrics::target_angles);
  m.def("angle_histogram(Tensor angles, Tensor labels, int num_classes, int bins, float max_angle) -> Tensor",
        &metrics::angle_histogram);
  m.def("top_k_accuracy(Tensor logits, Tensor labels, int k) -> float", &metrics::top_k_accuracy);
  m.def("w_inter(Tensor weight) -> float", &metrics::w_inter);
  m.class_<AngleStatsClass>("AngleStats")
      .def(torch::init<int64_t, int64_t>())
      .def("update", [](const c10::intrusive_ptr<AngleStatsClass>& self, const at::Tensor& features,
                        const at::Tensor& labels) { self->stats.update(features, labels); })
      .def("merge", [](const c10::intrusive_ptr<AngleStatsClass>& self,
                       const c10::intrusive_ptr<AngleStatsClass>& other) { self->stats.merge(other->stats); })
      .def("reset", [](const c10::intrusive_ptr<AngleStatsClass>& self) { self->stats.reset(); })
      .def("sums", [](const c10::intrusive_ptr<AngleStatsClass>& self) { return self->stats.sums(); })
      .def("counts", [](const c10::intrusive_ptr<AngleStatsClass>& self) { return self->stats.counts(); })
      .def("compute", [](const c10::intrusive_ptr<AngleStatsClass>& self, const at::Tensor& weight) {
        const metrics::AngleSummary s = self->stats.compute(weight);
        return AngleSummaryResult{s.wc_intra, s.w_inter, s.c_inter,       s.intra,
                                  s.wc,       s.counts,  s.empty_classes, s.centers};
      });
}

}  // namespace angular::ops
