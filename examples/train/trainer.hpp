#pragma once
// The reference trainer: a CIFAR-style ResNet and one of the four losses, SGD (no Nesterov,
// weight decay 5e-4) on the one-cycle policy, the angle metrics every epoch, an atomic
// checkpoint after every epoch and resumption from it.

#include "data.hpp"
#include "resnet.hpp"
#include "schedule.hpp"

#include <angular/loss.hpp>
#include <angular/metrics.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>
#include <torch/version.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace train {

/// A non-finite loss stopped the run; the last checkpoint is the last good epoch.
struct Diverged : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  std::string dataset = "fashion-mnist";  // fashion-mnist | cifar10 | cifar100
  std::string data;                       // default: Debian's Fashion-MNIST folder
  std::string loss = "arc";               // soft | center | arcface | arc
  int64_t epochs = 0, batch_size = 0;     // 0: the paper's Table 1 value
  double lr = 0;                          // 0: Table 1's value for the loss
  std::optional<double> k, scale, margin, lambda, alpha;
  int64_t embedding_dim = 0;  // 0: the network's pooled features
  bool augment = false;
  int64_t train_limit = 0, test_limit = 0;
  std::string device = "cpu";
  int threads = 2;
  uint64_t seed = 0;
  std::string out;
  bool resume = false;
  int64_t stop_after = 0;  // stop once this epoch is done (0: run all); --resume continues
  bool quiet = false;      // no progress output (used by tests)
};

/// torch::optim::SGD with its update done by ATen's multi-tensor (_foreach) kernels: a few
/// launches per step instead of four per parameter, which a GPU run of a small ResNet notices.
/// Same maths and the same per-parameter state, so checkpoints of either load into the other.
class ForeachSGD : public torch::optim::SGD {
 public:
  using SGD::SGD;

  torch::Tensor step(LossClosure closure = nullptr) override {
    TORCH_CHECK(!closure, "ForeachSGD: closures are not supported");
    torch::NoGradGuard no_grad;
    for (auto& group : param_groups()) {
      const auto& o = static_cast<const torch::optim::SGDOptions&>(group.options());
      std::vector<torch::Tensor> params, steps;
      for (const auto& p : group.params())
        if (p.grad().defined()) {
          params.push_back(p);
          steps.push_back(p.grad());  // becomes the step d_p, in place: zero_grad() follows
        }
      if (params.empty()) continue;
      if (o.weight_decay() != 0) at::_foreach_add_(steps, params, o.weight_decay());
      if (o.momentum() != 0) {
        // Every parameter's buffer; those that had one before this step are also updated.
        std::vector<torch::Tensor> momentum, continued_buffers, continued_steps;
        for (size_t i = 0; i < params.size(); ++i) {
          auto& state = state_[params[i].unsafeGetTensorImpl()];
          if (!state) {
            state = std::make_unique<torch::optim::SGDParamState>();
            static_cast<torch::optim::SGDParamState&>(*state).momentum_buffer(
                steps[i].clone().detach());  // SGD's first step: buf = d_p
          } else {
            continued_buffers.push_back(static_cast<torch::optim::SGDParamState&>(*state).momentum_buffer());
            continued_steps.push_back(steps[i]);
          }
          momentum.push_back(static_cast<torch::optim::SGDParamState&>(*state).momentum_buffer());
        }
        if (!continued_buffers.empty()) {
          at::_foreach_mul_(continued_buffers, o.momentum());
          at::_foreach_add_(continued_buffers, continued_steps, 1 - o.dampening());
        }
        if (o.nesterov()) at::_foreach_add_(steps, momentum, o.momentum());
        else steps = momentum;
      }
      at::_foreach_add_(params, steps, -o.lr());
    }
    return {};
  }
};

/// The paper's Table 1, and ArcFace's scale and margin per dataset. The library's s = 64,
/// m = 0.5 are made for thousands of classes. On Fashion-MNIST (ResNet20, one epoch, lr 0.1)
/// m = 0.5 with s = 8, 16, 32 (and s = 16 at lr 0.01), and m = 0.35 with s = 8, left the
/// classes anti-aligned with their vectors (WCIntra 2.5–2.8 rad, 30–82 % accuracy), while
/// m = 0.2 trained: s = 8 → 87.6 %, s = 16 → 88.9 % (WCIntra 0.23). The CIFAR values are the
/// same choice, not swept (no CIFAR data here).
struct DatasetDefaults {
  std::string network;
  int64_t epochs, batch_size;
  double lr_soft, lr_arc, lr_arcface, lr_center;
  double arcface_scale, arcface_margin;
};

inline DatasetDefaults defaults_for(const std::string& dataset) {
  if (dataset == "fashion-mnist") return {"resnet20", 60, 256, 0.1, 0.1, 0.1, 0.01, 16, 0.2};
  if (dataset == "cifar10") return {"resnet18", 160, 128, 0.01, 0.1, 0.1, 0.01, 16, 0.2};
  if (dataset == "cifar100") return {"resnet34", 160, 128, 0.01, 0.1, 0.1, 0.01, 32, 0.2};
  throw std::invalid_argument("unknown dataset " + dataset);
}

inline double default_lr(const DatasetDefaults& d, const std::string& loss) {
  if (loss == "soft") return d.lr_soft;
  if (loss == "center") return d.lr_center;
  if (loss == "arcface") return d.lr_arcface;
  return d.lr_arc;
}

/// Any of the four loss modules behind one interface.
struct LossHead {
  std::shared_ptr<torch::nn::Module> module;
  std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)> loss;
  std::function<torch::Tensor(const torch::Tensor&)> logits;
  torch::Tensor weight() const { return module->named_parameters()["weight"]; }
};

template <class Impl>
LossHead bind_loss(std::shared_ptr<Impl> impl) {
  return {impl, [impl](const torch::Tensor& f, const torch::Tensor& y) { return impl->forward(f, y); },
          [impl](const torch::Tensor& f) { return impl->logits(f); }};
}

inline LossHead make_loss(const Options& o, const DatasetDefaults& d, int64_t classes, int64_t dim) {
  if (o.loss == "soft") return bind_loss(std::make_shared<angular::SoftmaxLossImpl>(classes, dim));
  if (o.loss == "center") {
    angular::CenterLossOptions options(classes, dim);
    if (o.lambda) options.lambda(*o.lambda);
    if (o.alpha) options.alpha(*o.alpha);
    return bind_loss(std::make_shared<angular::CenterLossImpl>(options));
  }
  if (o.loss == "arcface") {
    angular::ArcFaceLossOptions options(classes, dim);
    options.scale(o.scale.value_or(d.arcface_scale)).margin(o.margin.value_or(d.arcface_margin));
    return bind_loss(std::make_shared<angular::ArcFaceLossImpl>(options));
  }
  if (o.loss == "arc") {
    angular::ArcLossOptions options(classes, dim);
    if (o.k) options.k(*o.k);
    return bind_loss(std::make_shared<angular::ArcLossImpl>(options));
  }
  throw std::invalid_argument("unknown loss " + o.loss);
}

struct EpochRow {
  int64_t epoch;
  double lr, train_loss, train_acc, test_acc, wc_intra, w_inter, c_inter, seconds;
};

constexpr const char* kCsvHeader = "epoch,lr,train_loss,train_acc,test_acc,wc_intra,w_inter,c_inter,seconds";

/// Writes `text` to `path` through a temporary file and a rename: readers never see half.
inline void write_atomically(const std::filesystem::path& path, const std::string& text) {
  const auto temporary = path.string() + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) throw std::runtime_error(temporary + ": cannot write");
  }
  std::filesystem::rename(temporary, path);
}

inline std::string csv(const std::vector<EpochRow>& rows) {
  std::ostringstream out;
  out << kCsvHeader << "\n";
  out.precision(8);
  for (const auto& r : rows)
    out << r.epoch << ',' << r.lr << ',' << r.train_loss << ',' << r.train_acc << ',' << r.test_acc << ','
        << r.wc_intra << ',' << r.w_inter << ',' << r.c_inter << ',' << r.seconds << "\n";
  return out.str();
}

inline std::vector<EpochRow> read_csv(const std::filesystem::path& path, int64_t epochs) {
  std::vector<EpochRow> rows;
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  while (static_cast<int64_t>(rows.size()) < epochs && std::getline(in, line)) {
    EpochRow r{};
    if (std::sscanf(line.c_str(), "%ld,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf", &r.epoch, &r.lr, &r.train_loss,
                    &r.train_acc, &r.test_acc, &r.wc_intra, &r.w_inter, &r.c_inter, &r.seconds) == 9)
      rows.push_back(r);
  }
  return rows;
}

/// Progress of an epoch: a bar with rate and ETA on a terminal, a line per 10 % otherwise.
class Progress {
 public:
  Progress(bool quiet, int64_t epoch, int64_t epochs, int64_t batches)
      : quiet_(quiet), tty_(isatty(fileno(stderr)) != 0), epoch_(epoch), epochs_(epochs), batches_(batches),
        start_(std::chrono::steady_clock::now()) {}
  /// Whether update() would show something now: the caller then reads the loss from the
  /// device (each read waits for the GPU, so a GPU run reads only this often).
  bool due(int64_t done) const {
    if (quiet_ || done == batches_) return done == batches_;
    if (tty_) return std::chrono::steady_clock::now() - last_shown_ > std::chrono::milliseconds(200);
    return done * 10 / batches_ != (done - 1) * 10 / batches_;
  }

  void update(int64_t done, int64_t images, double loss) {
    if (quiet_) return;
    last_shown_ = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = images / std::max(elapsed, 1e-9);
    const double eta = elapsed / done * (batches_ - done);
    if (tty_) {
      const int filled = static_cast<int>(30 * done / batches_);
      std::fprintf(stderr, "\repoch %ld/%ld [%s%s] %ld/%ld  %.0f img/s  ETA %3.0fs  loss %.4f ", epoch_, epochs_,
                   std::string(filled, '#').c_str(), std::string(30 - filled, '.').c_str(), done, batches_, rate,
                   eta, loss);
      if (done == batches_) std::fprintf(stderr, "\n");
    } else {
      std::fprintf(stderr, "epoch %ld/%ld: %ld/%ld batches, %.0f img/s, ETA %.0fs, loss %.4f\n", epoch_, epochs_,
                   done, batches_, rate, eta, loss);
    }
  }

 private:
  bool quiet_, tty_;
  int64_t epoch_, epochs_, batches_;
  std::chrono::steady_clock::time_point start_, last_shown_;
};

struct RunResult {
  std::vector<EpochRow> rows;
  nlohmann::json summary;
};

inline double images_per_second(double images, double seconds) { return images / std::max(seconds, 1e-9); }

class Trainer {
 public:
  explicit Trainer(Options options) : o_(std::move(options)), d_(defaults_for(o_.dataset)) {
    if (o_.epochs <= 0) o_.epochs = d_.epochs;
    if (o_.batch_size <= 0) o_.batch_size = d_.batch_size;
    if (o_.lr <= 0) o_.lr = default_lr(d_, o_.loss);
    if (o_.data.empty()) o_.data = kDebianFashionMnist;
    device_ = torch::Device(o_.device);
    // Fixed image and batch shapes: let cuDNN pick its fastest convolutions once.
    if (device_.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
    torch::set_num_threads(o_.threads);
    load_data();
    torch::manual_seed(o_.seed);
    model_ = make_resnet(d_.network, train_.images.size(1), o_.embedding_dim);
    head_ = make_loss(o_, d_, train_.classes, model_->feature_dim);
    model_->to(device_);
    head_.module->to(device_);
    std::vector<torch::Tensor> params = model_->parameters();
    for (const auto& p : head_.module->parameters()) params.push_back(p);
    optimizer_ = std::make_unique<ForeachSGD>(
        params, torch::optim::SGDOptions(o_.lr).momentum(0.95).weight_decay(5e-4).nesterov(false));
    steps_per_epoch_ = (train_.size() + o_.batch_size - 1) / o_.batch_size;
    schedule_ = OneCycle{o_.epochs * steps_per_epoch_, o_.lr};
  }

  const Options& options() const { return o_; }

  RunResult run() {
    namespace fs = std::filesystem;
    fs::create_directories(o_.out);
    const auto start = std::chrono::steady_clock::now();
    std::vector<EpochRow> rows;
    int64_t first = 1;
    const fs::path checkpoint = fs::path(o_.out) / "checkpoint.pt";
    if (o_.resume && fs::exists(checkpoint)) {
      first = load_checkpoint(checkpoint) + 1;
      rows = read_csv(fs::path(o_.out) / "metrics.csv", first - 1);
      if (!o_.quiet) std::fprintf(stderr, "resuming after epoch %ld\n", first - 1);
    }
    const int64_t last_epoch = o_.stop_after > 0 ? std::min(o_.epochs, o_.stop_after) : o_.epochs;
    // SGD on these ResNets needs some dozens of steps before the test accuracy means much
    // (README, "Short runs", has the numbers).
    constexpr int64_t kFewSteps = 100;
    if (!o_.quiet && schedule_.total_steps < kFewSteps)
      std::fprintf(stderr,
                   "note: %ld optimizer steps in all (%ld images / batch %ld x %ld epoch(s)), %.0f %% of them "
                   "warming up: expect a far-from-converged model; a smaller --batch-size or more --epochs "
                   "gives more steps\n",
                   schedule_.total_steps, train_.size(), o_.batch_size, o_.epochs, 100 * schedule_.pct_start);
    for (int64_t epoch = first; epoch <= last_epoch; ++epoch) {
      const auto epoch_start = std::chrono::steady_clock::now();
      EpochRow row = train_epoch(epoch);
      train_seconds_.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count());
      evaluate(row, epoch);
      row.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
      rows.push_back(row);
      write_atomically(fs::path(o_.out) / "metrics.csv", csv(rows));
      save_checkpoint(checkpoint, epoch);
      if (!o_.quiet)
        std::fprintf(stderr, "epoch %ld: train loss %.4f acc %.4f | test acc %.4f | WCIntra %.4f WInter %.4f CInter %.4f\n",
                     epoch, row.train_loss, row.train_acc, row.test_acc, row.wc_intra, row.w_inter, row.c_inter);
    }
    if (rows.empty()) throw std::runtime_error(o_.out + ": nothing to do, every epoch is done");
    RunResult result{rows, {}};
    const EpochRow& last = rows.back();
    double total_train_seconds = 0;
    std::vector<double> per_epoch_rates;
    for (const double seconds : train_seconds_) {
      total_train_seconds += seconds;
      per_epoch_rates.push_back(images_per_second(train_.size(), seconds));
    }
    result.summary = {
        {"test_accuracy", last.test_acc},
        {"test_error_percent", 100 * (1 - last.test_acc)},
        {"wc_intra", last.wc_intra},
        {"w_inter", last.w_inter},
        {"c_inter", last.c_inter},
        {"epochs", o_.epochs},
        {"epochs_done", last.epoch},
        {"options",
         {{"dataset", o_.dataset}, {"network", d_.network}, {"loss", o_.loss}, {"batch_size", o_.batch_size},
          {"lr", o_.lr}, {"embedding_dim", o_.embedding_dim}, {"augment", o_.augment},
          {"train_limit", o_.train_limit}, {"test_limit", o_.test_limit}, {"seed", o_.seed},
          {"threads", o_.threads}, {"loss_module", describe_loss()}}},
        {"torch_version", TORCH_VERSION},
        {"device", o_.device},
        {"wall_seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()},
        {"train_images_per_second", images_per_second(train_.size() * train_seconds_.size(), total_train_seconds)},
        {"train_images_per_second_per_epoch", per_epoch_rates}};
    write_atomically(fs::path(o_.out) / "summary.json", result.summary.dump(2) + "\n");
    return result;
  }

 private:
  void load_data() {
    if (o_.dataset == "fashion-mnist") {
      train_ = read_fashion_mnist(o_.data, "train");
      test_ = read_fashion_mnist(o_.data, "t10k");
    } else if (o_.dataset == "cifar10") {
      train_ = read_cifar10(o_.data, true);
      test_ = read_cifar10(o_.data, false);
    } else {
      train_ = read_cifar100(o_.data, true);
      test_ = read_cifar100(o_.data, false);
    }
    train_ = head(train_, o_.train_limit);
    test_ = head(test_, o_.test_limit);
    normalize_ = Normalizer::fit(train_.images);
    // Keep the data where the model trains: no copy per batch on a GPU.
    train_.images = train_.images.to(device_);
    train_.labels = train_.labels.to(device_);
    test_.images = test_.images.to(device_);
    test_.labels = test_.labels.to(device_);
  }

  std::string describe_loss() const {
    std::ostringstream s;
    s << *head_.module;
    return s.str();
  }

  EpochRow train_epoch(int64_t epoch) {
    model_->train();
    head_.module->train();
    auto generator = at::make_generator<at::CPUGeneratorImpl>(o_.seed * 1000003 + static_cast<uint64_t>(epoch));
    const torch::Tensor order = torch::randperm(train_.size(), generator, torch::kLong).to(device_);
    Progress progress(o_.quiet, epoch, o_.epochs, steps_per_epoch_);
    // Sums stay on the device; on a GPU they are read only when the progress shows (or the
    // epoch ends), so the host queues steps ahead of the GPU. A non-finite loss poisons the
    // sum and is caught at the next read.
    const bool read_every_step = !device_.is_cuda();
    torch::Tensor loss_sum = torch::zeros({}, torch::TensorOptions(torch::kDouble).device(device_));
    torch::Tensor correct = torch::zeros({}, torch::TensorOptions(torch::kLong).device(device_));
    int64_t seen = 0, last_read = 0;
    double lr = 0;
    for (int64_t b = 0; b < steps_per_epoch_; ++b) {
      const int64_t step = (epoch - 1) * steps_per_epoch_ + b;
      lr = schedule_.lr(step);
      for (auto& group : optimizer_->param_groups()) {
        auto& options = static_cast<torch::optim::SGDOptions&>(group.options());
        options.lr(lr);
        options.momentum(schedule_.momentum(step));
      }
      const torch::Tensor index = order.slice(0, b * o_.batch_size, std::min(train_.size(), (b + 1) * o_.batch_size));
      torch::Tensor images = train_.images.index_select(0, index);
      if (o_.augment) images = augment(images, generator);
      const torch::Tensor labels = train_.labels.index_select(0, index);
      optimizer_->zero_grad();
      const torch::Tensor features = model_->forward(normalize_(images));
      const torch::Tensor loss = head_.loss(features, labels);
      {
        torch::NoGradGuard no_grad;
        loss_sum.add_(loss.detach(), labels.size(0));
        correct += head_.logits(features.detach()).argmax(1).eq(labels).sum();
      }
      seen += labels.size(0);
      const bool show = progress.due(b + 1);
      if (read_every_step || show) {
        const double mean = loss_sum.item<double>() / seen;
        if (!std::isfinite(mean))
          throw Diverged("the loss became non-finite at epoch " + std::to_string(epoch) + ", step " +
                         (b == last_read ? "" : std::to_string(last_read + 1) + "…") + std::to_string(b + 1) +
                         "; the checkpoint keeps the last good epoch");
        last_read = b + 1;
        if (show) progress.update(b + 1, seen, mean);
      }
      loss.backward();
      optimizer_->step();
    }
    return {epoch, lr, loss_sum.item<double>() / seen, static_cast<double>(correct.item<int64_t>()) / seen,
            0, 0, 0, 0, 0};
  }

  void evaluate(EpochRow& row, int64_t epoch) {
    namespace fs = std::filesystem;
    torch::NoGradGuard no_grad;
    model_->eval();
    head_.module->eval();
    const int64_t classes = test_.classes;
    angular::metrics::AngleStats stats(classes, model_->feature_dim);
    constexpr int64_t kBins = 36;
    torch::Tensor histogram = torch::zeros({classes, kBins}, torch::kLong);
    std::vector<torch::Tensor> sampled_features, sampled_labels;
    int64_t correct = 0;
    const torch::Tensor weight = head_.weight().detach();
    for (int64_t begin = 0; begin < test_.size(); begin += 1000) {
      const int64_t end = std::min(test_.size(), begin + 1000);
      const torch::Tensor images = test_.images.slice(0, begin, end);
      const torch::Tensor labels = test_.labels.slice(0, begin, end);
      const torch::Tensor features = model_->forward(normalize_(images));
      correct += head_.logits(features).argmax(1).eq(labels).sum().item<int64_t>();
      stats.update(features, labels);
      const torch::Tensor angles = angular::metrics::target_angles(features, labels, weight.to(features.scalar_type()));
      histogram += angular::metrics::angle_histogram(angles, labels, classes, kBins).cpu();
      sampled_features.push_back(features.cpu());
      sampled_labels.push_back(labels.cpu());
    }
    const auto summary = stats.compute(weight);
    row.test_acc = static_cast<double>(correct) / test_.size();
    row.wc_intra = summary.wc_intra;
    row.w_inter = summary.w_inter;
    row.c_inter = summary.c_inter;
    append_histogram(fs::path(o_.out) / "histograms.csv", epoch, histogram);
    write_features(fs::path(o_.out) / "test_features.csv", torch::cat(sampled_features), torch::cat(sampled_labels));
  }

  /// Target-angle histograms of the test set (paper Fig. 7): epoch,class,bin_start,count.
  void append_histogram(const std::filesystem::path& path, int64_t epoch, const torch::Tensor& histogram) const {
    std::string text;
    if (epoch > 1 && std::filesystem::exists(path)) {
      std::ifstream in(path);
      std::string line;
      while (std::getline(in, line)) {
        const auto comma = line.find(',');
        if (line.rfind("epoch", 0) == 0 || (comma != std::string::npos && std::stol(line.substr(0, comma)) < epoch))
          text += line + "\n";
      }
    } else {
      text = "epoch,class,bin_start,count\n";
    }
    const int64_t bins = histogram.size(1);
    std::ostringstream out;
    for (int64_t c = 0; c < histogram.size(0); ++c)
      for (int64_t b = 0; b < bins; ++b)
        out << epoch << ',' << c << ',' << 3.14159265358979323846 * b / bins << ',' << histogram[c][b].item<int64_t>()
            << "\n";
    write_atomically(path, text + out.str());
  }

  /// Test features of the last epoch, up to 200 per class: label,f0,f1,… (for plots).
  static void write_features(const std::filesystem::path& path, const torch::Tensor& features,
                             const torch::Tensor& labels) {
    std::ostringstream out;
    out << "label";
    for (int64_t d = 0; d < features.size(1); ++d) out << ",f" << d;
    out << "\n";
    const torch::Tensor f = features.to(torch::kDouble).contiguous();
    std::vector<int64_t> per_class;
    for (int64_t i = 0; i < f.size(0); ++i) {
      const int64_t y = labels[i].item<int64_t>();
      if (y >= static_cast<int64_t>(per_class.size())) per_class.resize(y + 1, 0);
      if (per_class[y]++ >= 200) continue;
      out << y;
      const double* row = f.data_ptr<double>() + i * f.size(1);
      for (int64_t d = 0; d < f.size(1); ++d) out << ',' << static_cast<float>(row[d]);
      out << "\n";
    }
    write_atomically(path, out.str());
  }

  void save_checkpoint(const std::filesystem::path& path, int64_t epoch) {
    torch::serialize::OutputArchive archive, model, loss, optimizer;
    model_->save(model);
    head_.module->save(loss);
    optimizer_->save(optimizer);
    archive.write("model", model);
    archive.write("loss", loss);
    archive.write("optimizer", optimizer);
    archive.write("epoch", torch::tensor(epoch));
    const std::string temporary = path.string() + ".tmp";
    archive.save_to(temporary);
    std::filesystem::rename(temporary, path);
  }

  int64_t load_checkpoint(const std::filesystem::path& path) {
    torch::serialize::InputArchive archive, model, loss, optimizer;
    archive.load_from(path.string(), device_);
    archive.read("model", model);
    archive.read("loss", loss);
    archive.read("optimizer", optimizer);
    model_->load(model);
    head_.module->load(loss);
    optimizer_->load(optimizer);
    torch::Tensor epoch;
    archive.read("epoch", epoch);
    return epoch.item<int64_t>();
  }

  Options o_;
  DatasetDefaults d_;
  torch::Device device_{torch::kCPU};
  Dataset train_, test_;
  Normalizer normalize_;
  ResNet model_{nullptr};
  LossHead head_;
  std::unique_ptr<ForeachSGD> optimizer_;
  int64_t steps_per_epoch_ = 0;
  OneCycle schedule_{1, 0.1};
  std::vector<double> train_seconds_;  // training time of each epoch this invocation ran
};

}  // namespace train
