#include "evaluate.hpp"

#include <algorithm>
#include <vector>

namespace train {

torch::Tensor test_features(ResNet& model, const Normalizer& normalize, const Dataset& test, int64_t begin,
                            int64_t end, int64_t batch_size) {
  torch::NoGradGuard no_grad;
  model->eval();
  std::vector<torch::Tensor> features;
  for (int64_t first = begin; first < end; first += batch_size)
    features.push_back(model->forward(normalize(test.images.slice(0, first, std::min(end, first + batch_size)))).cpu());
  if (features.empty()) return torch::empty({0, model->feature_dim});
  return torch::cat(features);
}

Evaluation evaluate_features(const LossHead& head, const torch::Tensor& features, const torch::Tensor& labels,
                             int64_t classes, int64_t batch_size) {
  torch::NoGradGuard no_grad;
  head.module->eval();
  const torch::Device device = head.module->parameters().front().device();
  Evaluation result;
  result.features = features;
  result.labels = labels;
  int64_t correct = 0;
  for (int64_t begin = 0; begin < features.size(0); begin += batch_size) {
    const int64_t end = std::min(features.size(0), begin + batch_size);
    correct += head.predict(features.slice(0, begin, end).to(device))
                   .cpu()
                   .eq(labels.slice(0, begin, end))
                   .sum()
                   .item<int64_t>();
  }
  result.accuracy = static_cast<double>(correct) / static_cast<double>(features.size(0));
  // The class vectors the angles are measured to (with sub-centers, each class's nearest to
  // its mean feature direction).
  const torch::Tensor means = torch::zeros({classes, features.size(1)}, features.options())
                                  .index_add_(0, labels, torch::nn::functional::normalize(features, torch::nn::functional::NormalizeFuncOptions().dim(1)));
  const torch::Tensor weight = head.class_vectors(means).cpu().to(features.scalar_type());
  angular::metrics::AngleStats stats(classes, features.size(1));
  stats.update(features, labels);
  result.angles = stats.compute(weight);
  result.histogram = angular::metrics::angle_histogram(angular::metrics::target_angles(features, labels, weight), labels,
                                                       classes, kHistogramBins);
  result.retrieval = angular::evaluation::retrieval_metrics(features, labels);
  return result;
}

Evaluation evaluate(ResNet& model, const LossHead& head, const Normalizer& normalize, const Dataset& test,
                    int64_t batch_size) {
  return evaluate_features(head, test_features(model, normalize, test, 0, test.size(), batch_size), test.labels.cpu(),
                           test.classes, batch_size);
}

}  // namespace train
