#pragma once
// Any of angular's loss modules behind one interface: the loss of features and labels, the
// logits whose argmax is the predicted class, and the class vectors.

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
  std::function<torch::Tensor(const torch::Tensor& features)> logits;
  torch::Tensor weight() const { return module->named_parameters()["weight"]; }
};

/// A LossHead over a module with forward(features, labels) and logits(features).
template <class Impl>
LossHead bind_loss(std::shared_ptr<Impl> impl) {
  return {impl, [impl](const torch::Tensor& f, const torch::Tensor& y) { return impl->forward(f, y); },
          [impl](const torch::Tensor& f) { return impl->logits(f); }};
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
  throw std::invalid_argument("unknown loss " + o.loss);
}

}  // namespace train
