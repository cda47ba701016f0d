#pragma once
// The class-sharded margin loss as an operator (angular_ops.cpp registers it), over a process
// group made in Python (torch.distributed.init_process_group) and named by its group_name, as
// torch's functional collectives name theirs. Its kernel is composite: the sharded loss's own
// autograd functions (angular/distributed/sharded_loss.hpp) record the graph, collectives
// included; it runs eagerly (its collectives and label checks read data). With a momentum it
// is a module's training step: the margin's running statistics (AdaFace's, CurricularFace's)
// first take the gathered batch, in place, as the C++ ShardedMarginLoss's do. A sample_rate
// below 1 samples classes as PartialFC does (ShardedLossFuncOptions::sample_rate), drawn from
// `generator`, and writes the kept classes into `sampled_classes`; `row_losses` takes every
// gathered row's loss.

#include "kernels.hpp"

#include <angular/distributed/sharded_module.hpp>

#include <torch/library.h>
#include <torch/csrc/distributed/c10d/GroupRegistry.hpp>

namespace angular::ops {

inline at::Tensor sharded_margin_cross_entropy(const at::Tensor& features, const at::Tensor& weight_shard,
                                               const at::Tensor& target, c10::string_view group_name,
                                               int64_t num_classes, c10::string_view margin,
                                               const at::Tensor& settings, at::TensorList statistics,
                                               const std::optional<at::Tensor>& class_weight, int64_t reduction,
                                               int64_t ignore_index, double label_smoothing, int64_t chunk_classes,
                                               std::optional<double> momentum, double sample_rate,
                                               const std::optional<at::Generator>& generator,
                                               const std::optional<at::Tensor>& sampled_classes,
                                               const std::optional<at::Tensor>& row_losses) {
  const MarginCall call =
      make_call(at::Tensor(), margin, settings, statistics, class_weight, reduction, ignore_index, label_smoothing, 0);
  const distributed::ProcessGroupPtr group = c10d::resolve_process_group(std::string(group_name));
  return with_margin_named(call.margin, [&](auto o) {
    using FuncOptions = decltype(o);
    const detail::MarginInputs in = margin_inputs<FuncOptions>(call, at::Tensor());
    const auto options = distributed::functional::ShardedLossFuncOptions()
                             .chunk_classes(chunk_classes)
                             .norm_mean(in.norm_mean)
                             .norm_std(in.norm_std)
                             .t(in.t)
                             .sample_rate(sample_rate)
                             .generator(generator.value_or(at::Generator()))
                             .sampled_classes(sampled_classes.value_or(at::Tensor()))
                             .row_losses(row_losses.value_or(at::Tensor()));
    return detail::sharded_module_step(features, weight_shard, target, group, num_classes,
                                       distributed::Margin(options_of<FuncOptions>(call)), options, momentum);
  });
}

inline std::tuple<int64_t, int64_t> class_range(int64_t num_classes, int64_t rank, int64_t world_size) {
  const distributed::ClassRange range = distributed::class_range(num_classes, rank, world_size);
  return {range.offset, range.count};
}

inline void register_distributed(torch::Library& m) {
  m.def(
      "sharded_margin_cross_entropy(Tensor features, Tensor weight_shard, Tensor target, str group_name, "
      "int num_classes, str margin, Tensor settings, Tensor(a!)[] statistics, Tensor? class_weight, int reduction, "
      "int ignore_index, float label_smoothing, int chunk_classes, float? momentum, float sample_rate=1., "
      "Generator? generator=None, Tensor(b!)? sampled_classes=None, Tensor(c!)? row_losses=None) -> Tensor");
  m.def("class_range(int num_classes, int rank, int world_size) -> (int, int)", &class_range);
}

inline void register_distributed_kernels(torch::Library& m) {
  m.impl("sharded_margin_cross_entropy", &sharded_margin_cross_entropy);
}

}  // namespace angular::ops
