#include "evaluate.hpp"

#include <algorithm>
#include <vector>

namespace train {

Evaluation evaluate(ResNet& model, const LossHead& head, const Normalizer& normalize, const Dataset& test,
                    int64_t batch_size) {
  torch::NoGradGuard no_grad;
  model->eval();
  head.module->eval();
  const int64_t classes = test.classes;
  angular::metrics::AngleStats stats(classes, model->feature_dim);
  Evaluation result;
  result.histogram = torch::zeros({classes, kHistogramBins}, torch::kLong);
  std::vector<torch::Tensor> features, labels;
  int64_t correct = 0;
  for (int64_t begin = 0; begin < test.size(); begin += batch_size) {
    const int64_t end = std::min(test.size(), begin + batch_size);
    const torch::Tensor images = test.images.slice(0, begin, end);
    const torch::Tensor y = test.labels.slice(0, begin, end);
    const torch::Tensor x = model->forward(normalize(images));
    correct += head.logits(x).argmax(1).eq(y).sum().item<int64_t>();
    stats.update(x, y);
    features.push_back(x.cpu());
    labels.push_back(y.cpu());
  }
  result.accuracy = static_cast<double>(correct) / static_cast<double>(test.size());
  result.features = torch::cat(features);
  result.labels = torch::cat(labels);
  // The class vectors the angles are measured to (with sub-centers, each class's nearest to
  // its mean feature direction).
  const torch::Tensor means = torch::zeros({classes, model->feature_dim}, result.features.options())
                                  .index_add_(0, result.labels, angular::detail::l2_normalize_rows(result.features));
  const torch::Tensor weight = head.class_vectors(means);
  const torch::Tensor angles =
      angular::metrics::target_angles(result.features, result.labels, weight.cpu().to(result.features.scalar_type()));
  result.histogram += angular::metrics::angle_histogram(angles, result.labels, classes, kHistogramBins);
  result.angles = stats.compute(weight);
  result.retrieval = angular::evaluation::retrieval_metrics(result.features, result.labels);
  return result;
}

}  // namespace train
