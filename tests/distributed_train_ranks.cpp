// What a rank runs for the data-parallel trainer's test (tests/distributed_train_test.cpp):
// the trainer's ResNet with synchronised BatchNorm and summed gradients against one process.

#include "support/distributed_workers.hpp"

#include <train/data_parallel.hpp>
#include <train/resnet.hpp>

#include <iostream>
#include <string>

namespace angular::test {

namespace {

/// Largest |a − b| / max(|b|, tiny) of two tensors.
double relative_error(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item<double>();
}

}  // namespace

/// Two SGD steps of ResNet20 in float64, each rank's replica (synchronised BatchNorm) on its
/// part of a 13-image batch with the gradients summed over the ranks, against one process on the
/// whole batch: features, every gradient and the BatchNorm statistics agree to 1e-10.
int data_parallel_resnet_equals_single(const ProcessGroupPtr& group) {
  const train::DataParallel dp{group, group->getRank(), group->getSize()};
  torch::manual_seed(7);
  train::ResNet replica = train::make_resnet("resnet20", 1, 0, group);
  torch::manual_seed(7);
  train::ResNet single = train::make_resnet("resnet20", 1, 0);
  replica->to(torch::kDouble);
  single->to(torch::kDouble);
  torch::manual_seed(11);
  const int64_t batch = 13;
  const at::Tensor images = torch::randn({batch, 1, 28, 28}, torch::kDouble);
  const at::Tensor directions = torch::randn({batch, 64}, torch::kDouble);
  const auto share = train::share_of(dp, batch);
  int failures = 0;
  const auto expect_close = [&](const at::Tensor& mine, const at::Tensor& expected, const std::string& what) {
    const double error = relative_error(mine, expected);
    if (error <= 1e-10) return;
    std::cerr << "rank " << dp.rank << ": " << what << " off by " << error << " (relative)\n";
    ++failures;
  };
  for (int step = 0; step < 2; ++step) {
    // The loss of the whole batch is a mean over its rows; each rank holds its rows' terms.
    const at::Tensor mine = replica->forward(images.narrow(0, share.offset, share.count));
    ((mine * directions.narrow(0, share.offset, share.count)).sum() / batch).backward();
    train::sum_gradients(dp, replica->parameters());
    const at::Tensor whole = single->forward(images);
    ((whole * directions).sum() / batch).backward();
    const std::string at_step = " at step " + std::to_string(step);
    expect_close(mine, whole.narrow(0, share.offset, share.count).detach(), "features" + at_step);
    const auto replica_parameters = replica->named_parameters(), single_parameters = single->named_parameters();
    for (const auto& p : single_parameters)
      expect_close(replica_parameters[p.key()].grad(), p.value().grad(), "gradient of " + p.key() + at_step);
    const auto replica_buffers = replica->named_buffers();
    for (const auto& b : single->named_buffers())
      if (b.value().is_floating_point()) expect_close(replica_buffers[b.key()], b.value(), b.key() + at_step);
    torch::NoGradGuard no_grad;
    for (auto* model : {&replica, &single})
      for (auto& p : (*model)->parameters()) {
        p.sub_(p.grad(), 0.1);
        p.mutable_grad().zero_();
      }
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace angular::test
