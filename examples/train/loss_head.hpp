#pragma once
// Any of angular's loss modules behind one interface: the loss of features and labels, the
// predicted classes, and the class vectors; built by name from --loss and the run's settings.

#include "options.hpp"

#include <torch/torch.h>
#include <angular/loss.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

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
  /// The margin with all its settings, as the sharded loss takes it; unset for the center loss.
  std::optional<angular::AnyMargin> margin;
  /// The single-process module's settings by name, as it prints itself
  /// ("angular::ArcFaceLoss(num_classes=10, embedding_dim=64, scale=16, ...)").
  std::string description;
};

/// The names --loss accepts: the table of margins' and "center".
inline std::vector<std::string> loss_names() {
  std::vector<std::string> names{"center"};
  angular::for_each_margin_module([&](auto tag) {
    names.push_back(angular::margin_name<typename decltype(tag)::type>());
  });
  return names;
}

/// A LossHead over a module with forward(features, labels), logits(features), cosines(features)
/// and a weight [C·K, D] of K vectors per class.
template <class Impl>
LossHead bind_loss(std::shared_ptr<Impl> impl, int64_t classes) {
  const int64_t vectors_per_class = impl->weight.size(0) / classes;
  return {impl, [impl](const torch::Tensor& f, const torch::Tensor& y) { return impl->forward(f, y); },
          [impl](const torch::Tensor& f) { return impl->logits(f).argmax(1); },
          [impl, classes, vectors_per_class](const torch::Tensor& means) {
            const torch::Tensor w = impl->weight.detach();
            if (vectors_per_class == 1) return w;
            const torch::Tensor cos = impl->cosines(means.to(w.options()))
                                          .view({classes, classes, vectors_per_class})
                                          .diagonal(0, 0, 1)  // [K, C]: class c's sub-centers to its mean
                                          .t();
            const torch::Tensor nearest = cos.argmax(1) + torch::arange(classes, cos.options().dtype(torch::kLong)) *
                                                              vectors_per_class;
            return w.index_select(0, nearest);
          },
          std::nullopt, c10::str(*impl)};
}

/// The value that the setting `name` of loss `loss` takes in this run: from the command line,
/// else the dataset's default where the trainers have one (scale, the angular margin), else
/// nullopt (the library's default).
inline std::optional<double> run_setting(const RunConfig& config, const std::string& loss, const std::string& name) {
  const Options& o = config.options;
  const bool angular_margin = loss != "adaface" && loss != "cosface";  // those two keep the library's
  if (name == "scale") return o.scale.value_or(config.defaults.arcface_scale);
  if (name == "k") return o.k;
  if (name == "margin" && loss == "sphereface") return o.sphereface_m;
  if (name == "margin" || name == "m2") return angular_margin ? o.margin.value_or(config.defaults.arcface_margin) : o.margin;
  if (name == "m1") return o.m1;
  if (name == "m3") return o.m3;
  if (name == "lambda") return loss == "sphereface" ? std::optional<double>(o.sphereface_lambda) : o.lambda;
  if (name == "alpha") return o.alpha;
  if (name == "sub_centers") return static_cast<double>(o.sub_centers);
  return std::nullopt;
}

/// The options of module `Impl` with this run's settings.
template <class Impl>
typename Impl::ModuleOptions head_options(const RunConfig& config, const std::string& loss, int64_t classes,
                                          int64_t dim) {
  typename Impl::ModuleOptions options(classes, dim);
  options.for_each_setting([&](const char* name, auto& value) {
    using T = std::decay_t<decltype(value)>;
    if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
      if (const std::optional<double> v = run_setting(config, loss, name)) value = static_cast<T>(*v);
    }
  });
  return options;
}

/// The module `Impl` with this run's settings, as a head.
template <class Impl>
LossHead make_head(const RunConfig& config, const std::string& loss, int64_t classes, int64_t dim) {
  const auto impl = std::make_shared<Impl>(head_options<Impl>(config, loss, classes, dim));
  LossHead head = bind_loss(impl, classes);
  if constexpr (!std::is_same_v<Impl, angular::CenterLossImpl>) head.margin = impl->func_options();
  return head;
}

/// The loss module a run asks for, with its settings or the dataset's defaults.
inline LossHead make_loss(const RunConfig& config, int64_t classes, int64_t dim) {
  const std::string& loss = config.options.loss;
  if (loss == "center") return make_head<angular::CenterLossImpl>(config, loss, classes, dim);
  std::optional<LossHead> head;
  angular::for_each_margin_module([&](auto tag) {
    using Impl = typename decltype(tag)::type;
    if (loss == angular::margin_name<Impl>()) head = make_head<Impl>(config, loss, classes, dim);
  });
  if (!head) throw std::invalid_argument("unknown loss " + loss);
  return *head;
}

/// A margin loss as make_loss would build it, without its class vectors: what a sharded head
/// is made of, where no process may hold every class's vectors.
struct MarginSpec {
  angular::AnyMargin margin;
  std::string description;  // as the single-process module prints itself (LossHead::description)
  int64_t vectors_per_class = 1;
};

/// The margin loss of `config` for `classes` classes of dimension `dim`, without its C·K·D class
/// vectors. Draws K numbers from the default generator.
inline MarginSpec margin_spec(const RunConfig& config, int64_t classes, int64_t dim) {
  const std::string& loss = config.options.loss;
  std::optional<MarginSpec> spec;
  angular::for_each_margin_module([&](auto tag) {
    using Impl = typename decltype(tag)::type;
    if (loss != angular::margin_name<Impl>()) return;
    // The module of one class of one dimension, given the run's options: it describes itself
    // and gives its functional options as the run's module would.
    const auto module = std::make_shared<Impl>(head_options<Impl>(config, loss, 1, 1));
    module->options = head_options<Impl>(config, loss, classes, dim);
    spec = MarginSpec{module->func_options(), c10::str(*module), module->weight.size(0)};
  });
  if (!spec)
    throw std::invalid_argument("data-parallel runs shard the margin losses and the modified softmax; --loss " + loss +
                                " has no sharded head in angular-train");
  return *spec;
}

}  // namespace train
