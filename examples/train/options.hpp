#pragma once
// The options of a training run, and the paper's defaults (Table 1) that resolve() fills in
// for those left at zero.

#include <algorithm>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace train {

/// Where Debian's dataset-fashion-mnist package puts its four gzip IDX files.
constexpr const char* kDebianFashionMnist = "/usr/share/datasets/fashion-mnist";

struct Options {
  std::string dataset = "fashion-mnist";  // fashion-mnist | cifar10 | cifar100
  std::string data;                       // default: Debian's Fashion-MNIST folder
  std::string loss = "arc";               // one of loss_names() (loss_head.hpp)
  int64_t epochs = 0, batch_size = 0;     // 0: the paper's Table 1 value
  double lr = 0;                          // 0: Table 1's value for the loss
  std::optional<double> k, scale, margin, lambda, alpha;
  std::optional<double> m1, m3;           // the combined margin's
  double sphereface_m = 4, sphereface_lambda = 5;
  int64_t sub_centers = 3;
  int64_t embedding_dim = 0;  // 0: the network's pooled features
  bool augment = false;
  int64_t train_limit = 0, test_limit = 0;
  std::string device = "cpu";
  int threads = 2;
  int64_t timeout_seconds = 300;  // data-parallel: how long a rank waits for the others
  double sample_rate = 1.0;       // data-parallel: PartialFC's class sampling, in (0, 1]
  uint64_t seed = 0;
  std::string out;
  bool resume = false;
  int64_t stop_after = 0;  // stop once this epoch is done (0: run all); --resume continues
  bool quiet = false;      // no progress output (used by tests)
};

/// The paper's Table 1 for a dataset, and ArcFace's scale and margin for its class count (the
/// library's s = 64, m = 0.5 are made for thousands of classes; the README's trainer section has
/// the sweep behind these).
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

/// Table 1's learning rate for the paper's losses; ArcFace's for the other margins.
inline double default_lr(const DatasetDefaults& d, const std::string& loss) {
  if (loss == "soft") return d.lr_soft;
  if (loss == "center") return d.lr_center;
  if (loss == "arc") return d.lr_arc;
  return d.lr_arcface;
}

/// A run's options with every default filled in, and the dataset's defaults they came from.
struct RunConfig {
  Options options;
  DatasetDefaults defaults;
};

/// Fills in what `options` leaves at zero or empty from the dataset's defaults.
inline RunConfig resolve(Options options) {
  const DatasetDefaults defaults = defaults_for(options.dataset);
  if (options.epochs <= 0) options.epochs = defaults.epochs;
  if (options.batch_size <= 0) options.batch_size = defaults.batch_size;
  if (options.lr <= 0) options.lr = default_lr(defaults, options.loss);
  if (options.data.empty()) options.data = kDebianFashionMnist;
  return {std::move(options), defaults};
}

}  // namespace train
