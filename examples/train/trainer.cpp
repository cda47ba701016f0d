#include "trainer.hpp"

#include "progress.hpp"
#include "sharded_evaluate.hpp"

#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>

namespace train {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

double images_per_second(double images, double seconds) { return images / std::max(seconds, 1e-9); }

/// The training images on `device`, so that no batch is copied there; the normaliser is
/// fitted on them first.
Splits load_data(const Options& options, torch::Device device, Normalizer& normalize) {
  Splits data = read_splits(options.dataset, options.data);
  data.train = head(data.train, options.train_limit);
  data.test = head(data.test, options.test_limit);
  normalize = Normalizer::fit(data.train.images);
  for (Dataset* split : {&data.train, &data.test}) {
    split->images = split->images.to(device);
    split->labels = split->labels.to(device);
  }
  return data;
}

}  // namespace

Trainer::Trainer(const Options& options)
    : config_(resolve(options)),
      device_(options_.device),
      dp_(join_ranks(device_, std::chrono::seconds(options_.timeout_seconds))) {
  if (!dp_.active() && options_.sample_rate < 1)
    throw std::invalid_argument(c10::str("--sample-rate ", options_.sample_rate,
                                         ": class sampling is the class-sharded head's, in data-parallel runs "
                                         "(torchrun); one process keeps every class (--sample-rate 1)"));
  if (!dp_.writes()) config_.options.quiet = true;
  // Fixed image and batch shapes: let cuDNN pick its fastest convolutions once.
  if (device_.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
  torch::set_num_threads(options_.threads);
  data_ = load_data(options_, device_, normalize_);
  torch::manual_seed(options_.seed);
  model_ = make_resnet(config_.defaults.network, data_.train.images.size(1), options_.embedding_dim, dp_.group);
  if (dp_.active()) {
    // A stream of its own, the same on every rank, saved in each rank's checkpoint shard.
    sampler_ = at::make_generator<at::CPUGeneratorImpl>(options_.seed ^ 0x5eed5a3b1e5ULL);
    shard_ = make_head_shard(config_, data_.train.classes, model_->feature_dim, dp_, options_.sample_rate, sampler_);
    head_ = as_loss_head(*shard_);
  } else {
    head_ = make_loss(config_, data_.train.classes, model_->feature_dim);
  }
  model_->to(device_);
  head_.module->to(device_);
  std::vector<torch::Tensor> params = model_->parameters();
  for (const auto& p : head_.module->parameters()) params.push_back(p);
  const int64_t global_batch = options_.batch_size * dp_.size;
  steps_per_epoch_ = (data_.train.size() + global_batch - 1) / global_batch;
  schedule_ = OneCycle{options_.epochs * steps_per_epoch_, options_.lr};
  // The schedule sets the learning rate and momentum before every step (set_schedule); the
  // optimizer starts with its step-0 values.
  optimizer_ = std::make_unique<ForeachSGD>(
      params,
      torch::optim::SGDOptions(schedule_.lr(0)).momentum(schedule_.momentum(0)).weight_decay(5e-4).nesterov(false));
}

int64_t Trainer::resume(std::optional<RunFolder>& folder, std::vector<EpochRow>& rows) {
  if (!options_.resume || !has_checkpoint(options_.out, dp_)) return 1;
  const int64_t done = load_checkpoint(options_.out, device_, {*model_, *head_.module, *optimizer_, sampler_},
                                       head_.description, dp_);
  // Rank 0's metrics.csv and logs: a bad one stops every rank, not rank 0 alone.
  std::string error;
  try {
    if (folder) rows = folder->resume(done);
  } catch (const DataError& e) {
    error = e.what();
  }
  if (const std::string first = first_error(dp_, error); !first.empty()) throw DataError(first);
  if (!options_.quiet) std::fprintf(stderr, "resuming after epoch %" PRId64 "\n", done);
  return done + 1;
}

RunResult Trainer::run() {
  std::optional<RunFolder> folder;
  if (dp_.writes()) folder.emplace(options_.out);
  const auto start = Clock::now();
  std::vector<EpochRow> rows;
  const int64_t first = resume(folder, rows);
  const int64_t last_epoch = options_.stop_after > 0 ? std::min(options_.epochs, options_.stop_after) : options_.epochs;
  // --resume of a run whose epochs are done: its result as written, nothing trained or rewritten.
  if (first > last_epoch) return {rows, folder ? folder->read_summary() : nlohmann::json(), folder.has_value()};
  note_few_steps();
  for (int64_t epoch = first; epoch <= last_epoch; ++epoch) {
    const auto epoch_start = Clock::now();
    std::vector<StepRecord> steps;
    EpochRow row = train_epoch(epoch, steps);
    train_seconds_.push_back(seconds_since(epoch_start));
    const std::optional<Evaluation> evaluation = evaluate_epoch();
    if (evaluation) {
      row.test_acc = evaluation->accuracy;
      row.wc_intra = evaluation->angles.wc_intra;
      row.w_inter = evaluation->angles.w_inter;
      row.c_inter = evaluation->angles.c_inter;
      row.p_at_1 = evaluation->retrieval.precision_at_1;
      row.r_precision = evaluation->retrieval.r_precision;
      row.map_at_r = evaluation->retrieval.map_at_r;
    }
    row.seconds = seconds_since(epoch_start);
    rows.push_back(row);
    if (folder) {
      folder->write_steps(steps);
      folder->write_evaluation(epoch, *evaluation);
      folder->write_metrics(rows);
    }
    save_checkpoint(options_.out, epoch, head_.description, {*model_, *head_.module, *optimizer_, sampler_}, dp_);
    if (!options_.quiet)
      std::fprintf(stderr,
                   "epoch %" PRId64
                   ": train loss %.4f acc %.4f | test acc %.4f MAP@R %.4f | WCIntra %.4f WInter %.4f CInter %.4f\n",
                   epoch, row.train_loss, row.train_acc, row.test_acc, row.map_at_r, row.wc_intra, row.w_inter,
                   row.c_inter);
  }
  if (!folder) return {rows, nullptr, false};
  RunResult result{rows, summary(rows.back(), seconds_since(start))};
  folder->write_summary(result.summary);
  return result;
}

std::optional<Evaluation> Trainer::evaluate_epoch() {
  if (!shard_) return evaluate(model_, head_, normalize_, data_.test);
  // Each rank computes the features of its part of the test set; every rank then predicts and
  // measures them over its own classes.
  const Dataset& test = data_.test;
  const auto share = share_of(dp_, test.size());
  const torch::Tensor mine = test_features(model_, normalize_, test, share.offset, share.offset + share.count);
  const torch::Tensor features = gather_to_all(dp_, mine.to(dp_.device)).cpu();
  return evaluate_sharded(*shard_, dp_, features, test.labels.cpu(), test.classes);
}

void Trainer::set_schedule(int64_t step) {
  for (auto& group : optimizer_->param_groups()) {
    auto& options = static_cast<torch::optim::SGDOptions&>(group.options());
    options.lr(schedule_.lr(step));
    options.momentum(schedule_.momentum(step));
  }
}

EpochRow Trainer::train_epoch(int64_t epoch, std::vector<StepRecord>& steps) {
  model_->train();
  head_.module->train();
  const Dataset& train = data_.train;
  const int64_t global_batch = options_.batch_size * dp_.size;
  auto generator = at::make_generator<at::CPUGeneratorImpl>(options_.seed * 1000003 + static_cast<uint64_t>(epoch));
  const torch::Tensor order = torch::randperm(train.size(), generator, torch::kLong).to(device_);
  // Every rank shuffles alike; each crops and flips its own images from its own stream.
  torch::Generator crops = dp_.active() ? at::make_generator<at::CPUGeneratorImpl>(
                                              (options_.seed * 1000003 + static_cast<uint64_t>(epoch)) * 65537 +
                                              static_cast<uint64_t>(dp_.rank) + 1)
                                        : generator;
  Progress progress(options_.quiet, epoch, options_.epochs, steps_per_epoch_);
  // The loss and the correct predictions are the global batch's, the same on every rank. Sums
  // and per-step records stay on the device; on a GPU they are read only when the progress
  // shows (or the epoch ends), so the host queues steps ahead of the GPU. A non-finite loss
  // poisons the sum and is caught at the next read.
  const bool read_every_step = !device_.is_cuda();
  const auto on_device = torch::TensorOptions().device(device_);
  torch::Tensor loss_sum = torch::zeros({}, on_device.dtype(torch::kDouble));
  torch::Tensor step_losses = torch::zeros({steps_per_epoch_}, on_device.dtype(torch::kDouble));
  torch::Tensor step_correct = torch::zeros({steps_per_epoch_}, on_device.dtype(torch::kLong));
  int64_t seen = 0, last_read = 0;
  for (int64_t b = 0; b < steps_per_epoch_; ++b) {
    set_schedule((epoch - 1) * steps_per_epoch_ + b);
    const int64_t begin = b * global_batch, rows = std::min(train.size(), begin + global_batch) - begin;
    const auto share = share_of(dp_, rows);
    const torch::Tensor index = order.slice(0, begin + share.offset, begin + share.offset + share.count);
    torch::Tensor images = train.images.index_select(0, index);
    if (options_.augment) images = augment(images, crops);
    const torch::Tensor labels = train.labels.index_select(0, index);
    optimizer_->zero_grad();
    const torch::Tensor features = model_->forward(normalize_(images));
    const torch::Tensor loss = head_.loss(features, labels);
    {
      torch::NoGradGuard no_grad;
      loss_sum.add_(loss.detach(), rows);
      step_losses[b].copy_(loss.detach());
      // A sharded head counts over the batch its loss gathered: the same count on every rank.
      step_correct[b].copy_(shard_ ? gathered_batch_correct(*shard_, dp_)
                                   : head_.predict(features.detach()).eq(labels).sum());
    }
    seen += rows;
    const bool show = progress.due(b + 1);
    if (read_every_step || show) {
      const double mean = loss_sum.item<double>() / static_cast<double>(seen);
      // The device is done with these steps: a bad label among them is an error now, not a
      // non-finite loss.
      angular::synchronize_label_checks();
      if (!std::isfinite(mean))
        throw Diverged("the loss became non-finite at epoch " + std::to_string(epoch) + ", step " +
                       (b == last_read ? "" : std::to_string(last_read + 1) + "…") + std::to_string(b + 1) +
                       "; the checkpoint keeps the last good epoch");
      last_read = b + 1;
      if (show) progress.update(b + 1, seen, mean);
    }
    loss.backward();
    sum_gradients(dp_, model_->parameters());
    optimizer_->step();
  }
  // One host copy of the epoch's per-step records.
  const torch::Tensor losses = step_losses.cpu(), corrects = step_correct.cpu();
  for (int64_t b = 0; b < steps_per_epoch_; ++b) {
    const int64_t images = std::min(train.size(), (b + 1) * global_batch) - b * global_batch;
    steps.push_back({epoch, b + 1, losses.data_ptr<double>()[b],
                     static_cast<double>(corrects.data_ptr<int64_t>()[b]) / static_cast<double>(images)});
  }
  const double lr = schedule_.lr(epoch * steps_per_epoch_ - 1);
  return {epoch,
          lr,
          loss_sum.item<double>() / static_cast<double>(seen),
          static_cast<double>(corrects.sum().item<int64_t>()) / static_cast<double>(seen),
          0,
          0,
          0,
          0,
          0,
          0,
          0,
          0};
}

void Trainer::note_few_steps() const {
  // SGD on these ResNets needs some dozens of steps before the test accuracy means much
  // (the README's "Short runs" has the numbers).
  constexpr int64_t kFewSteps = 100;
  if (options_.quiet || schedule_.total_steps >= kFewSteps) return;
  std::fprintf(stderr,
               "note: %" PRId64 " optimizer steps in all (%" PRId64 " images / batch %" PRId64 " x %" PRId64
               " epoch(s)), %.0f %% of them warming up: expect a far-from-converged model; a smaller "
               "--batch-size or more --epochs gives more steps\n",
               schedule_.total_steps, data_.train.size(), options_.batch_size, options_.epochs,
               100 * schedule_.pct_start);
}

nlohmann::json Trainer::summary(const EpochRow& last, double wall_seconds) const {
  double total_train_seconds = 0;
  std::vector<double> per_epoch_rates;
  const auto images = static_cast<double>(data_.train.size());
  for (const double seconds : train_seconds_) {
    total_train_seconds += seconds;
    per_epoch_rates.push_back(images_per_second(images, seconds));
  }
  const Options& o = options_;
  return {{"test_accuracy", last.test_acc},
          {"test_error_percent", 100 * (1 - last.test_acc)},
          {"wc_intra", last.wc_intra},
          {"w_inter", last.w_inter},
          {"c_inter", last.c_inter},
          {"p_at_1", last.p_at_1},
          {"r_precision", last.r_precision},
          {"map_at_r", last.map_at_r},
          {"epochs", o.epochs},
          {"epochs_done", last.epoch},
          {"options",
           {{"dataset", o.dataset},
            {"network", config_.defaults.network},
            {"loss", o.loss},
            {"batch_size", o.batch_size},
            {"lr", o.lr},
            {"embedding_dim", o.embedding_dim},
            {"augment", o.augment},
            {"train_limit", o.train_limit},
            {"test_limit", o.test_limit},
            {"seed", o.seed},
            {"threads", o.threads},
            {"processes", dp_.size},
            {"sample_rate", o.sample_rate},
            {"loss_module", head_.description}}},
          {"torch_version", TORCH_VERSION},
          {"device", o.device},
          {"wall_seconds", wall_seconds},
          {"train_images_per_second",
           images_per_second(images * static_cast<double>(train_seconds_.size()), total_train_seconds)},
          {"train_images_per_second_per_epoch", per_epoch_rates}};
}

}  // namespace train
