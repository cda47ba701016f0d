#pragma once
// Datasets of the reference trainers: Fashion-MNIST (gzip IDX, from Debian's
// dataset-fashion-mnist by default) and CIFAR-10 / CIFAR-100 (their binary distributions),
// decoded by data_formats.hpp. Images come out as float [N, C, H, W] in [0, 1], labels as int64 [N].

#include "data_formats.hpp"

#include <torch/torch.h>

#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace train {

struct Dataset {
  torch::Tensor images;  // [N, C, H, W] float in [0, 1]
  torch::Tensor labels;  // [N] int64
  int64_t classes = 0;
  int64_t size() const { return labels.size(0); }
};

inline std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path + ": cannot open");
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// An IDX file's array as a tensor of unsigned bytes, after `check` has read its layout from
/// the decompressed bytes.
template <class Check>
torch::Tensor read_idx(const std::string& path, Check check) {
  const std::vector<uint8_t> bytes = inflate_gzip(read_file(path), path);
  const IdxLayout layout = check(bytes, path);
  return torch::from_blob(const_cast<uint8_t*>(bytes.data() + layout.payload_offset), layout.sizes, torch::kUInt8)
      .clone();
}

/// One split ("train" or "t10k") of Fashion-MNIST from `dir`.
inline Dataset read_fashion_mnist(const std::string& dir, const std::string& split) {
  const std::string images_path = dir + "/" + split + "-images-idx3-ubyte.gz";
  const std::string labels_path = dir + "/" + split + "-labels-idx1-ubyte.gz";
  const torch::Tensor images = read_idx(images_path, fashion_mnist_images);
  const torch::Tensor labels = read_idx(labels_path, fashion_mnist_labels).to(torch::kLong);
  if (images.size(0) != labels.size(0))
    throw DataError(labels_path + ": " + std::to_string(labels.size(0)) + " labels for " +
                    std::to_string(images.size(0)) + " images");
  return {images.unsqueeze(1).to(torch::kFloat).div_(255), labels, 10};
}

/// The images and labels of CIFAR records.
inline Dataset parse_cifar(const std::vector<uint8_t>& bytes, const CifarLayout& layout, const std::string& name) {
  const int64_t records = cifar_records(bytes, layout, name);
  torch::Tensor images = torch::empty({records, 3, 32, 32}, torch::kUInt8);
  torch::Tensor labels = torch::empty({records}, torch::kLong);
  decode_cifar(bytes, layout, name, images.data_ptr<uint8_t>(), labels.data_ptr<int64_t>());
  return {images.to(torch::kFloat).div_(255), labels, layout.classes};
}

/// CIFAR-10 from DIR/cifar-10-batches-bin/ (or DIR itself): 5 training files, 1 test file.
inline Dataset read_cifar10(const std::string& dir, bool train) {
  const std::string base = std::ifstream(dir + "/cifar-10-batches-bin/test_batch.bin").good()
                               ? dir + "/cifar-10-batches-bin"
                               : dir;
  std::vector<std::string> files;
  if (train) {
    for (int i = 1; i <= 5; ++i) files.push_back(base + "/data_batch_" + std::to_string(i) + ".bin");
  } else {
    files.push_back(base + "/test_batch.bin");
  }
  std::vector<torch::Tensor> images, labels;
  for (const auto& file : files) {
    Dataset part = parse_cifar(read_file(file), kCifar10, file);
    images.push_back(part.images);
    labels.push_back(part.labels);
  }
  return {torch::cat(images), torch::cat(labels), 10};
}

/// CIFAR-100 (fine labels) from DIR/cifar-100-binary/ (or DIR itself).
inline Dataset read_cifar100(const std::string& dir, bool train) {
  const std::string base = std::ifstream(dir + "/cifar-100-binary/test.bin").good()
                               ? dir + "/cifar-100-binary"
                               : dir;
  const std::string file = base + (train ? "/train.bin" : "/test.bin");
  return parse_cifar(read_file(file), kCifar100, file);
}

/// The training and test splits of `dataset` (fashion-mnist, cifar10 or cifar100) in `dir`.
struct Splits {
  Dataset train, test;
};

inline Splits read_splits(const std::string& dataset, const std::string& dir) {
  if (dataset == "fashion-mnist") return {read_fashion_mnist(dir, "train"), read_fashion_mnist(dir, "t10k")};
  if (dataset == "cifar10") return {read_cifar10(dir, true), read_cifar10(dir, false)};
  if (dataset == "cifar100") return {read_cifar100(dir, true), read_cifar100(dir, false)};
  throw std::invalid_argument("unknown dataset " + dataset);
}

/// The first `limit` samples (all with limit <= 0).
inline Dataset head(Dataset data, int64_t limit) {
  if (limit > 0 && limit < data.size()) {
    data.images = data.images.slice(0, 0, limit);
    data.labels = data.labels.slice(0, 0, limit);
  }
  return data;
}

/// Per-channel z-score with statistics of the training images.
struct Normalizer {
  torch::Tensor mean, std;  // [1, C, 1, 1]
  static Normalizer fit(const torch::Tensor& images) {
    return {images.mean({0, 2, 3}, true), images.std({0, 2, 3}, true, true).clamp_min(1e-6)};
  }
  torch::Tensor operator()(const torch::Tensor& x) const {
    return (x - mean.to(x.device())) / std.to(x.device());
  }
};

/// The paper's "+" augmentation on a batch [B, C, H, W], on its device: random crop with
/// 4-pixel zero padding, then horizontal flip with probability 0.5.
inline torch::Tensor augment(const torch::Tensor& batch, torch::Generator& generator) {
  namespace F = torch::nn::functional;
  const int64_t b = batch.size(0), h = batch.size(2), w = batch.size(3);
  const torch::Tensor padded = F::pad(batch, F::PadFuncOptions({4, 4, 4, 4}));
  const auto cpu = torch::TensorOptions().dtype(torch::kLong);
  const torch::Tensor dy = torch::randint(0, 9, {b}, generator, cpu).to(batch.device());
  const torch::Tensor dx = torch::randint(0, 9, {b}, generator, cpu).to(batch.device());
  const auto long_opts = cpu.device(batch.device());
  // Gather rows and columns per sample: index [B, 1, H, 1] and [B, 1, 1, W].
  const torch::Tensor rows = (torch::arange(h, long_opts).view({1, h}) + dy.view({b, 1}));
  const torch::Tensor cols = (torch::arange(w, long_opts).view({1, w}) + dx.view({b, 1}));
  const int64_t channels = batch.size(1);
  torch::Tensor out = padded.gather(2, rows.view({b, 1, h, 1}).expand({b, channels, h, w + 8}));
  out = out.gather(3, cols.view({b, 1, 1, w}).expand({b, channels, h, w}));
  const torch::Tensor flip = torch::rand({b}, generator, torch::TensorOptions()).lt(0.5).to(batch.device());
  return torch::where(flip.view({b, 1, 1, 1}), out.flip(3), out);
}

}  // namespace train
