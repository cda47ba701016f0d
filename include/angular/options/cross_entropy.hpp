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

namespace angular {

/// The workspace that the features-level losses (functional::linear_*, the modules' forward)
/// size their row chunks by when `chunk_rows` is automatic: 128 MiB.
constexpr int64_t kDefaultWorkspaceBytes = int64_t{128} << 20;

}  // namespace angular

// The features-level losses' chunking, in the options of every loss that has one:
//   chunk_rows  samples per chunk: each chunk holds [chunk_rows, C] logits (and as much again
//               for their gradient on CUDA); 0 (default) takes as many as fit
//               kDefaultWorkspaceBytes. Losses over a cosine matrix have no chunks and ignore it.
#define ANGULAR_CHUNK_ARGS TORCH_ARG(int64_t, chunk_rows) = 0
