#pragma once
// PartialFC's class sampling (An et al. 2022): per step, of the C_r classes that one rank (or
// the one process) holds, every class that labels a sample of the batch (a positive) is kept,
// and negatives are drawn uniformly without replacement from the others until
//   n_r = max(positives, ceil(rate·C_r))
// classes are kept. The loss is then the margin cross-entropy over the kept classes alone:
// its softmax, its label smoothing (ε over the kept classes) and its class weights see only
// them, the margin's own numbers stay those of all C classes, and the rows of W not kept get
// a zero gradient. A rank's kept classes are listed positives first (ascending), then the
// drawn negatives (ascending), so that every rank knows where any label lands without asking.

#include <angular/detail/checks.hpp>
#include <angular/detail/linear_pass.hpp>

#include <torch/csrc/autograd/custom_function.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>

namespace angular::detail {

/// The sampling settings of one call: the rate, the generator and the caller's record.
struct ClassSampling {
  double rate = 1.0;
  at::Generator generator;  // undefined: the default CPU generator
  at::Tensor record;        // undefined, or set to the kept classes (int64, CPU)

  bool active() const { return rate < 1.0; }
};

template <class Options>
ClassSampling class_sampling(const Options& options) {
  return {options.sample_rate(), options.generator(), options.sampled_classes()};
}

inline void check_class_sampling(const ClassSampling& s) {
  check_hyperparameter("sample_rate", s.rate, s.rate > 0 && s.rate <= 1, "in (0, 1]");
  TORCH_CHECK(!s.generator.defined() || s.generator.device().is_cpu(),
              "angular: generator (class sampling) must be a CPU generator, got one on ", s.generator.device());
  TORCH_CHECK(!s.record.defined() || (s.record.is_cpu() && s.record.scalar_type() == at::kLong),
              "angular: sampled_classes (the record of the kept classes) must be an int64 CPU tensor, got ",
              s.record.scalar_type(), " on ", s.record.device());
}

/// How many of `classes` a rank keeps with `positives` of them labels of the batch.
inline int64_t kept_class_count(int64_t positives, int64_t classes, double rate) {
  const auto drawn = static_cast<int64_t>(std::ceil(rate * static_cast<double>(classes)));
  return std::min(classes, std::max(positives, drawn));
}

/// The positives of the classes [first, first + count): the distinct labels of `target` (any
/// device) in that range, as local indices [p] (int64, CPU, ascending).
inline at::Tensor local_positives(const at::Tensor& target, int64_t first, int64_t count) {
  const at::Tensor labels = target.cpu();
  const at::Tensor here = labels.masked_select((labels >= first) & (labels < first + count));
  return std::get<0>(at::_unique(here, /*sorted=*/true)) - first;
}

/// The kept classes of `classes` local ones with `positives` (from local_positives): the
/// positives, then the drawn negatives, each ascending; [n] int64 on the CPU.
inline at::Tensor kept_classes(const at::Tensor& positives, int64_t classes, double rate, at::Generator generator) {
  const int64_t p = positives.numel();
  const int64_t draws = kept_class_count(p, classes, rate) - p;
  if (draws == 0) return positives;
  if (!generator.defined()) generator = at::detail::getDefaultCPUGenerator();
  const at::Tensor order = at::randperm(classes, generator, at::TensorOptions().dtype(at::kLong));
  at::Tensor positive = at::zeros({classes}, at::TensorOptions().dtype(at::kBool));
  positive.index_fill_(0, positives, true);
  const at::Tensor negatives = order.masked_select(positive.index_select(0, order).logical_not()).narrow(0, 0, draws);
  return at::cat({positives, std::get<0>(negatives.sort())});
}

/// The ignore_index of a loss over kept classes: its labels are [0, n), which a non-negative
/// ignore_index of the C classes could name.
inline int64_t kept_ignore_index(int64_t ignore_index) { return ignore_index >= 0 ? -1 : ignore_index; }

/// `target`'s labels (all of them positives, where `labelled`) as indices among the kept
/// classes of one process; the other rows get kept_ignore_index.
inline at::Tensor relabel(const at::Tensor& target, const at::Tensor& positives, const at::Tensor& labelled,
                          int64_t ignore_index) {
  return at::where(labelled, at::searchsorted(positives.to(target.device()), target), kept_ignore_index(ignore_index));
}

/// Rows `rows` [n] (distinct) of W as index_select gives them, whose backward writes their
/// gradient into a zero one of W's shape allocated as the fused passes allocate theirs (in huge
/// pages on the CPU: a fresh [C, D] gradient costs as much in 4 KiB page faults as the step's
/// products at r = 0.1).
struct KeptRows : torch::autograd::Function<KeptRows> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& weight, const at::Tensor& rows) {
    ctx->save_for_backward({rows});
    ctx->saved_data["sizes"] = weight.sizes().vec();
    return weight.index_select(0, rows);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor rows = ctx->get_saved_variables()[0];
    at::Tensor grad = empty_for_pass(ctx->saved_data["sizes"].toIntVector(), grads[0].options()).zero_();
    grad.index_copy_(0, rows, grads[0]);
    return {grad, {}};
  }
};

/// The kept vectors of W [C·K, D] (K per class) for the kept classes `kept` [n]: [n·K, D].
inline at::Tensor kept_vectors(const at::Tensor& weight, const at::Tensor& kept, int64_t sub_centers) {
  at::Tensor rows = kept.to(weight.device());
  if (sub_centers > 1) rows = (rows.unsqueeze(1) * sub_centers + at::arange(sub_centers, rows.options())).flatten();
  return KeptRows::apply(weight, rows);
}

/// Sets the caller's record (where defined) to `kept` + `offset`: the kept classes' indices.
inline void write_record(const ClassSampling& s, const at::Tensor& kept, int64_t offset) {
  if (!s.record.defined()) return;
  at::Tensor record = s.record;
  record.set_(kept + offset);
}

}  // namespace angular::detail
