// The usage example of the README, built so that it stays true.

#include <angular/loss.hpp>
#include <torch/torch.h>

int main() {
  auto net = torch::nn::Sequential(torch::nn::Linear(784, 256), torch::nn::ReLU(),
                                   torch::nn::Linear(256, 64));          // embedding
  angular::ArcLoss loss(angular::ArcLossOptions(/*num_classes=*/10, /*embedding_dim=*/64));
  std::vector<torch::Tensor> params = net->parameters();
  for (auto& p : loss->parameters()) params.push_back(p);                 // class vectors W
  torch::optim::SGD opt(params, torch::optim::SGDOptions(0.1).momentum(0.9));
  auto x = torch::randn({128, 784}), y = torch::randint(10, {128}, torch::kLong);
  opt.zero_grad();
  torch::Tensor value = loss(net->forward(x), y);                         // scalar loss
  value.backward();
  opt.step();
  torch::Tensor predicted = loss->logits(net->forward(x)).argmax(1);      // classes
}
