#pragma once
// Any of angular's loss modules behind one interface: the loss of features and labels, the
// predicted classes, and the class vectors.

#include "options.hpp"

#include <torch/torch.h>
#include <angular/loss.hpp>

#include <functional>
#include <memory>
#include <stdexcept>

namespace train {

struct LossHead {
  std::shared_ptr<torch::nn::Module> module;
  std::function<torch::Tensor(const torch::Tensor& features, const torch::Tensor& labels)> loss;
  /// The classes [B] the head predicts for features [B, D]: the argmax of its logits.
  std::function<torch::Tensor(const torch::Tensor& features)> predict;
  /// One vector per class [C, D] for the angle metrics, given the classes' mean features
  /// [C, D]: the class vectors, or with sub-centers each class's nearest to its mean (unset
  /// for a data-parallel run's shard: see sharded_head.hpp).
  std::function<torch::Tensor(const torch::Tensor& class_means)> class_vectors;
};

/// A LossHead over a module with forward(features, labels), logits(features) and a weight
/// [C·K, D] of K vectors per class.
template <class Impl>
LossHead bind_loss(std::shared_ptr<Impl> impl, int64_t vectors_per_class = 1) {
  return {impl, [impl](const torch::Tensor& f, const torch::Tensor& y) { return impl->forward(f, y); },
          [impl](const torch::Tensor& f) { return impl->logits(f).argmax(1); },
          [impl, vectors_per_class](const torch::Tensor& means) {
            const torch::Tensor w = impl->weight.detach();
            if (vectors_per_class == 1) return w;
            const int64_t classes = w.size(0) / vectors_per_class;
            const torch::Tensor cos = angular::detail::cosine_matrix(means.to(w.options()), w)
                                          .view({classes, classes, vectors_per_class})
                                          .diagonal(0, 0, 1)  // [K, C]: class c's sub-centers to its mean
                                          .t();
            const torch::Tensor nearest = cos.argmax(1) + torch::arange(classes, cos.options().dtype(torch::kLong)) *
                                                              vectors_per_class;
            return w.index_select(0, nearest);
          }};
}

/// The loss module a run asks for, with its hyper-parameters or the dataset's defaults.
inline LossHead make_loss(const RunConfig& config, int64_t classes, int64_t dim) {
  const Options& o = config.options;
  if (o.loss == "soft") return bind_loss(std::make_shared<angular::SoftmaxLossImpl>(classes, dim));
  if (o.loss == "center") {
    angular::CenterLossOptions options(classes, dim);
    if (o.lambda) options.lambda(*o.lambda);
    if (o.alpha) options.alpha(*o.alpha);
    return bind_loss(std::make_shared<angular::CenterLossImpl>(options));
  }
  if (o.loss == "arcface") {
    angular::ArcFaceLossOptions options(classes, dim);
    options.scale(o.scale.value_or(config.defaults.arcface_scale))
        .margin(o.margin.value_or(config.defaults.arcface_margin));
    return bind_loss(std::make_shared<angular::ArcFaceLossImpl>(options));
  }
  if (o.loss == "arc") {
    angular::ArcLossOptions options(classes, dim);
    if (o.k) options.k(*o.k);
    return bind_loss(std::make_shared<angular::ArcLossImpl>(options));
  }
  const double scale = o.scale.value_or(config.defaults.arcface_scale);
  const double margin = o.margin.value_or(config.defaults.arcface_margin);
  if (o.loss == "combined") {
    angular::CombinedMarginLossOptions options(classes, dim);
    options.scale(scale).m1(o.m1.value_or(1.0)).m2(margin).m3(o.m3.value_or(0.0));
    return bind_loss(std::make_shared<angular::CombinedMarginLossImpl>(options));
  }
  if (o.loss == "sphereface") {
    angular::SphereFaceLossOptions options(classes, dim);
    options.margin(o.sphereface_m).lambda(o.sphereface_lambda);
    return bind_loss(std::make_shared<angular::SphereFaceLossImpl>(options));
  }
  if (o.loss == "subcenter-arcface") {
    angular::SubCenterArcFaceLossOptions options(classes, dim, o.sub_centers);
    options.scale(scale).margin(margin);
    return bind_loss(std::make_shared<angular::SubCenterArcFaceLossImpl>(options), o.sub_centers);
  }
  if (o.loss == "adaface") {
    angular::AdaFaceLossOptions options(classes, dim);
    options.scale(scale).margin(o.margin.value_or(0.4));
    return bind_loss(std::make_shared<angular::AdaFaceLossImpl>(options));
  }
  if (o.loss == "curricularface") {
    angular::CurricularFaceLossOptions options(classes, dim);
    options.scale(scale).margin(margin);
    return bind_loss(std::make_shared<angular::CurricularFaceLossImpl>(options));
  }
  throw std::invalid_argument("unknown loss " + o.loss);
}

}  // namespace train
