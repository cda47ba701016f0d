// Trains a small MLP embedding on the real Fashion-MNIST with each of the four losses and
// prints the test accuracy of each: the quickest look at the library on real data.
//
//   fashion_mnist_losses [--data DIR] [--steps N] [--threads N]
//
// MLP 784-256-256-64 (the embedding), batch 128, SGD with momentum 0.9, weight decay 5e-4,
// cosine learning-rate schedule, 2400 steps (~5 epochs). The per-loss learning rates and
// ArcFace's scale come from a sweep on this setting (README, "The trainers and the demo").

#include "train/data.hpp"
#include "train/loss_head.hpp"
#include "train/options.hpp"

#include <angular/constants.hpp>
#include <angular/loss.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <unistd.h>

namespace {

struct Embedding : torch::nn::Module {
  Embedding() {
    net = register_module("net", torch::nn::Sequential(
                                     torch::nn::Flatten(), torch::nn::Linear(784, 256),
                                     torch::nn::ReLU(), torch::nn::Linear(256, 256),
                                     torch::nn::ReLU(), torch::nn::Linear(256, 64)));
  }
  torch::Tensor forward(const torch::Tensor& x) { return net->forward(x); }
  torch::nn::Sequential net{nullptr};
};

double run(const char* name, double lr, const train::LossHead& head, const train::Dataset& train,
           const train::Dataset& test, int steps) {
  const bool progress = isatty(fileno(stderr));
  torch::manual_seed(0);
  auto model = std::make_shared<Embedding>();
  std::vector<torch::Tensor> params = model->parameters();
  for (const auto& p : head.module->parameters()) params.push_back(p);
  torch::optim::SGD optimizer(params,
                              torch::optim::SGDOptions(lr).momentum(0.9).weight_decay(5e-4));
  const int64_t batch = 128, n = train.images.size(0);
  torch::Tensor order = torch::randperm(n);
  const auto start = std::chrono::steady_clock::now();
  for (int step = 0; step < steps; ++step) {
    const int64_t offset = (step * batch) % (n - batch);
    if (offset < batch) order = torch::randperm(n);
    const torch::Tensor index = order.slice(0, offset, offset + batch);
    const double scheduled = 0.5 * lr * (1 + std::cos(angular::kPi * step / steps));
    for (auto& group : optimizer.param_groups()) group.options().set_lr(scheduled);
    optimizer.zero_grad();
    const torch::Tensor value = head.loss(model->forward(train.images.index_select(0, index)),
                                     train.labels.index_select(0, index));
    value.backward();
    optimizer.step();
    if (progress && ((step + 1) % 100 == 0 || step + 1 == steps))
      std::fprintf(stderr, "\r  %-8s step %4d/%d  loss %.4f", name, step + 1, steps,
                   value.item<double>());
  }
  torch::NoGradGuard no_grad;
  model->eval();
  head.module->eval();
  const torch::Tensor predicted = head.predict(model->forward(test.images));
  const double accuracy = predicted.eq(test.labels).to(torch::kDouble).mean().item<double>();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (progress) std::fprintf(stderr, "\r%60s\r", "");
  std::printf("%-8s %6.2f %%   %5.1f s\n", name, 100 * accuracy, seconds);
  std::fflush(stdout);
  return accuracy;
}

}  // namespace

int main(int argc, char** argv) {
  std::string data = train::kDebianFashionMnist;
  int steps = 2400, threads = 2;
  double arcface_scale = 8, arcface_lr = 0.01;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 < argc && arg == "--data") data = argv[++i];
    else if (i + 1 < argc && arg == "--steps") steps = std::atoi(argv[++i]);
    else if (i + 1 < argc && arg == "--threads") threads = std::atoi(argv[++i]);
    else if (i + 1 < argc && arg == "--arcface-scale") arcface_scale = std::atof(argv[++i]);
    else if (i + 1 < argc && arg == "--arcface-lr") arcface_lr = std::atof(argv[++i]);
    else {
      std::fprintf(stderr, "usage: %s [--data DIR] [--steps N] [--threads N] [--arcface-scale S]"
                   " [--arcface-lr LR]\n", argv[0]);
      return 2;
    }
  }
  if (steps < 1 || threads < 1) {
    std::fprintf(stderr, "--steps and --threads must be positive\n");
    return 2;
  }
  torch::set_num_threads(threads);
  try {
    const train::Dataset train = train::read_fashion_mnist(data, "train");
    const train::Dataset test = train::read_fashion_mnist(data, "t10k");
    std::printf("Fashion-MNIST: %lld train / %lld test images, MLP 784-256-256-64, %d steps of 128\n",
                static_cast<long long>(train.images.size(0)),
                static_cast<long long>(test.images.size(0)), steps);
    std::printf("%-8s %8s   %7s\n", "loss", "test acc", "time");
    auto soft = std::make_shared<angular::SoftmaxLossImpl>(10, 64);
    auto center = std::make_shared<angular::CenterLossImpl>(10, 64);
    auto arcface = std::make_shared<angular::ArcFaceLossImpl>(
        angular::ArcFaceLossOptions(10, 64).scale(arcface_scale).margin(0.5));
    auto arc = std::make_shared<angular::ArcLossImpl>(10, 64);  // k = 4.32 for C = 10
    int below = 0;
    auto report = [&](double accuracy) { below += accuracy < 0.8 ? 1 : 0; };
    report(run("Soft", 0.1, train::bind_loss(soft, 10), train, test, steps));
    report(run("Center", 0.1, train::bind_loss(center, 10), train, test, steps));
    report(run("ArcFace", arcface_lr, train::bind_loss(arcface, 10), train, test, steps));
    report(run("Arc", 0.1, train::bind_loss(arc, 10), train, test, steps));
    if (below > 0) std::printf("%d loss(es) below 80 %% test accuracy\n", below);
    return below == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
