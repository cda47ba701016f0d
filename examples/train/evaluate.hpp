#pragma once
// One pass of a trained model over the test set: accuracy, the paper's angle metrics, the
// target-angle histograms (Fig. 7), retrieval of the test features against themselves
// (P@1, R-precision, MAP@R) and the features for the plots. Computes only; RunFolder
// writes the result.

#include "data.hpp"
#include "loss_head.hpp"
#include "resnet.hpp"

#include <torch/torch.h>
#include <angular/evaluation/retrieval.hpp>
#include <angular/metrics.hpp>

namespace train {

/// Bins of the target-angle histograms over [0, π).
constexpr int64_t kHistogramBins = 36;

struct Evaluation {
  double accuracy = 0;
  angular::metrics::AngleSummary angles;
  angular::evaluation::RetrievalMetrics retrieval;  // the test features against themselves
  torch::Tensor histogram;  // [C, kHistogramBins] int64 counts, on the CPU
  torch::Tensor features;   // [N, D] test features, on the CPU
  torch::Tensor labels;     // [N] int64, on the CPU
};

/// The features [end − begin, D], on the CPU, of the test images [begin, end) (normalised by
/// `normalize`), in eval mode and without gradients, in batches of `batch_size`.
torch::Tensor test_features(ResNet& model, const Normalizer& normalize, const Dataset& test, int64_t begin,
                            int64_t end, int64_t batch_size = 1000);

/// The evaluation of test features [N, D] with labels [N] of `classes` classes (both on the CPU)
/// under `head` (its predictions in batches of `batch_size`).
Evaluation evaluate_features(const LossHead& head, const torch::Tensor& features, const torch::Tensor& labels,
                             int64_t classes, int64_t batch_size = 1000);

/// Evaluates `model` with `head` on `test` (images normalised by `normalize`), in eval mode
/// and without gradients, in batches of `batch_size`.
Evaluation evaluate(ResNet& model, const LossHead& head, const Normalizer& normalize, const Dataset& test,
                    int64_t batch_size = 1000);

}  // namespace train
