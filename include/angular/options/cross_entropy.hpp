#pragma once
// Cross-entropy settings shared by every loss. All four losses end in the same
// cross-entropy over their logits, with the meaning of torch::nn::CrossEntropyLoss.

#include <ATen/ATen.h>
#include <torch/arg.h>
#include <torch/enum.h>

#include <variant>

namespace angular {

using reduction_t = std::variant<torch::enumtype::kNone, torch::enumtype::kMean, torch::enumtype::kSum>;

}  // namespace angular

// TORCH_ARG setters return the declaring class, so the shared fields are a macro rather than
// a base class: chained calls like `ArcLossOptions(10, 64).reduction(torch::kSum).k(4)` keep
// their type.
//   reduction        torch::kMean (default), torch::kSum or torch::kNone (per sample)
//   ignore_index     samples with this label add nothing to the loss, nor to its mean
//   label_smoothing  in [0, 1]: the target mixes (1 - eps) one-hot with eps / C uniform
//   weight           optional per-class weights [C], as torch::nn::CrossEntropyLoss's
#define ANGULAR_CROSS_ENTROPY_ARGS                             \
  TORCH_ARG(::angular::reduction_t, reduction) = torch::kMean; \
  TORCH_ARG(int64_t, ignore_index) = -100;                     \
  TORCH_ARG(double, label_smoothing) = 0.0;                    \
  TORCH_ARG(at::Tensor, weight) = at::Tensor()
