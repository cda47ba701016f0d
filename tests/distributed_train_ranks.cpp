// What a rank runs for the data-parallel trainer's test (tests/distributed_train_test.cpp):
// the trainer's ResNet with synchronised BatchNorm and summed gradients, and its sharded head's
// predictions and evaluation, against one process; and angular-train itself with the CPU
// allocator counted.

#include "support/distributed_workers.hpp"

#include "memory.hpp"

#include <train/cli.hpp>
#include <train/data_parallel.hpp>
#include <train/evaluate.hpp>
#include <train/resnet.hpp>
#include <train/sharded_evaluate.hpp>
#include <train/sharded_head.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
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

/// For margins with one vector per class and with sub-centers, 10 classes and 2 (fewer than
/// 3 ranks): each rank's shard holds the single-process head's starting vectors of its classes,
/// and the sharded predictions and evaluation of random features equal the single-process
/// head's: predictions, accuracy, histograms and retrieval exactly, the angles to 1e-12.
int sharded_evaluation_equals_single(const ProcessGroupPtr& group) {
  const train::DataParallel dp{group, group->getRank(), group->getSize()};
  int failures = 0;
  const auto expect = [&](bool ok, const std::string& what) {
    if (ok) return;
    std::cerr << "rank " << dp.rank << ": " << what << "\n";
    ++failures;
  };
  const auto close = [](double a, double b) {
    return (std::isnan(a) && std::isnan(b)) || std::abs(a - b) <= 1e-12 * std::max(1.0, std::abs(b));
  };
  for (const std::string loss : {"arcface", "arc", "soft", "subcenter-arcface"}) {
    for (const int64_t classes : {int64_t{10}, int64_t{2}}) {
      const std::string at = " (" + loss + ", " + std::to_string(classes) + " classes)";
      train::Options options;
      options.loss = loss;
      const train::RunConfig config = train::resolve(options);
      const int64_t dim = 12, samples = 300;
      torch::manual_seed(3);
      const train::LossHead single = train::make_loss(config, classes, dim);
      torch::manual_seed(3);
      const train::HeadShard shard = train::make_head_shard(config, classes, dim, dp, 1.0, at::Generator());
      const int64_t K = shard.spec.vectors_per_class;
      const torch::Tensor weight = single.module->named_parameters()["weight"].detach();
      expect(torch::equal(shard.weight(), weight.narrow(0, shard.classes().offset * K, shard.classes().count * K)),
             "the shard's starting vectors are not the single-process head's" + at);
      expect(shard.spec.description == single.description, "description " + shard.spec.description + at);

      // Features near their class's first vector, so that the predictions are mostly right.
      torch::manual_seed(11);
      const torch::Tensor labels = torch::randint(classes, {samples}, torch::kLong);
      const torch::Tensor features = weight.index_select(0, labels * K) * 4 + torch::randn({samples, dim});
      expect(torch::equal(train::shard_predictions(shard, dp, features), single.predict(features)),
             "predictions" + at);
      const train::Evaluation e = train::evaluate_features(single, features, labels, classes);
      const std::optional<train::Evaluation> s = train::evaluate_sharded(shard, dp, features, labels, classes);
      expect(s.has_value() == dp.writes(), "an evaluation on rank " + std::to_string(dp.rank) + at);
      if (!s) continue;
      expect(s->accuracy == e.accuracy, "accuracy " + std::to_string(s->accuracy) + at);
      expect(torch::equal(s->histogram, e.histogram), "histograms" + at);
      expect(close(s->angles.wc_intra, e.angles.wc_intra), "WCIntra" + at);
      expect(close(s->angles.w_inter, e.angles.w_inter), "WInter" + at);
      expect(close(s->angles.c_inter, e.angles.c_inter), "CInter" + at);
      expect(close(s->angles.intra, e.angles.intra), "intra" + at);
      expect(s->angles.empty_classes == e.angles.empty_classes, "empty classes" + at);
      expect(s->retrieval.map_at_r == e.retrieval.map_at_r, "MAP@R" + at);
      expect(torch::equal(s->features, e.features) && torch::equal(s->labels, e.labels), "test features" + at);
    }
  }
  return failures == 0 ? 0 : 1;
}

int train_recording_allocations(int argc, char** argv) {
  bench::CountingCpuAllocator& counting = bench::CountingCpuAllocator::install();
  counting.reset_peak();
  const int status = train::train_main(argc, argv);
  const char* folder = std::getenv(kAllocationsVariable);
  const char* rank = std::getenv("RANK");
  if (folder == nullptr || rank == nullptr) return 2;
  std::ofstream(std::filesystem::path(folder) / ("rank" + std::string(rank)))
      << counting.largest_bytes() << ' ' << counting.peak_bytes() << '\n';
  return status;
}

}  // namespace angular::test
