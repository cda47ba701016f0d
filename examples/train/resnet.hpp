#pragma once
// CIFAR-style residual networks (3x3 stem, no max-pool): ResNet20 (3 stages of 16/32/64
// channels, 3 basic blocks each) and ResNet18/34 (4 stages of 64…512). Projection shortcuts
// (1x1 conv + BN) where the shape changes; He initialisation. The output is the embedded
// feature: the pooled penultimate activations, or an extra linear layer's output. Given a
// process group, the batch normalisations take their statistics over every rank's batch.

#include "sync_batchnorm.hpp"

#include <torch/torch.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace train {

struct BasicBlockImpl : torch::nn::Module {
  BasicBlockImpl(int64_t in, int64_t out, int64_t stride, const ProcessGroupPtr& group) {
    using namespace torch::nn;
    conv1 = register_module("conv1", Conv2d(Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false)));
    bn1 = register_module("bn1", SyncBatchNorm2d(out, group));
    conv2 = register_module("conv2", Conv2d(Conv2dOptions(out, out, 3).padding(1).bias(false)));
    bn2 = register_module("bn2", SyncBatchNorm2d(out, group));
    if (stride != 1 || in != out) {
      shortcut = register_module("shortcut", Sequential(Conv2d(Conv2dOptions(in, out, 1).stride(stride).bias(false)),
                                                        SyncBatchNorm2d(out, group)));
    }
  }
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor y = torch::relu(bn1(conv1(x)));
    y = bn2(conv2(y));
    return torch::relu(y + (shortcut ? shortcut->forward(x) : x));
  }
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  SyncBatchNorm2d bn1{nullptr}, bn2{nullptr};
  torch::nn::Sequential shortcut{nullptr};
};
TORCH_MODULE(BasicBlock);

struct ResNetImpl : torch::nn::Module {
  /// `blocks` per stage, `widths` per stage; embedding_dim 0 keeps the pooled features.
  ResNetImpl(int64_t in_channels, std::vector<int64_t> blocks, std::vector<int64_t> widths,
             int64_t embedding_dim, const ProcessGroupPtr& group = {}) {
    using namespace torch::nn;
    stem = register_module("stem", Sequential(Conv2d(Conv2dOptions(in_channels, widths[0], 3).padding(1).bias(false)),
                                              SyncBatchNorm2d(widths[0], group), ReLU()));
    int64_t in = widths[0];
    for (size_t s = 0; s < blocks.size(); ++s) {
      for (int64_t b = 0; b < blocks[s]; ++b) {
        const int64_t stride = (s > 0 && b == 0) ? 2 : 1;
        stages->push_back(BasicBlock(in, widths[s], stride, group));
        in = widths[s];
      }
    }
    register_module("stages", stages);
    feature_dim = in;
    if (embedding_dim > 0) {
      embed = register_module("embed", Linear(in, embedding_dim));
      feature_dim = embedding_dim;
    }
    for (auto& m : modules(/*include_self=*/false)) {
      if (auto* conv = m->as<Conv2d>()) {
        init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
      } else if (auto* bn = m->as<BatchNorm2d>()) {
        init::ones_(bn->weight);
        init::zeros_(bn->bias);
      }
    }
  }
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor y = stages->forward(stem->forward(x));
    y = torch::adaptive_avg_pool2d(y, {1, 1}).flatten(1);
    return embed ? embed(y) : y;
  }
  torch::nn::Sequential stem{nullptr}, stages;
  torch::nn::Linear embed{nullptr};
  int64_t feature_dim = 0;
};
TORCH_MODULE(ResNet);

/// "resnet20", "resnet18" or "resnet34"; `group`: see SyncBatchNorm2d.
inline ResNet make_resnet(const std::string& name, int64_t in_channels, int64_t embedding_dim,
                          const ProcessGroupPtr& group = {}) {
  using Sizes = std::vector<int64_t>;
  if (name == "resnet20") return ResNet(in_channels, Sizes{3, 3, 3}, Sizes{16, 32, 64}, embedding_dim, group);
  if (name == "resnet18") return ResNet(in_channels, Sizes{2, 2, 2, 2}, Sizes{64, 128, 256, 512}, embedding_dim, group);
  if (name == "resnet34") return ResNet(in_channels, Sizes{3, 4, 6, 3}, Sizes{64, 128, 256, 512}, embedding_dim, group);
  throw std::invalid_argument("unknown network " + name);
}

}  // namespace train
