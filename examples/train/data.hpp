#pragma once
// Datasets of the reference trainers: Fashion-MNIST (gzip IDX, from Debian's
// dataset-fashion-mnist by default) and CIFAR-10 / CIFAR-100 (their binary distributions).
// Every field is validated; errors name the file and what is wrong, and nothing is read past
// a buffer. Images come out as float [N, C, H, W] in [0, 1], labels as int64 [N].

#include <torch/torch.h>
#include <zlib.h>

#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace train {

/// A data file is missing, truncated or malformed.
struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Dataset {
  torch::Tensor images;  // [N, C, H, W] float in [0, 1]
  torch::Tensor labels;  // [N] int64
  int64_t classes = 0;
  int64_t size() const { return labels.size(0); }
};

/// The whole decompressed content of a gzip file (a plain file reads as itself).
inline std::vector<uint8_t> read_gzip(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) throw DataError(path + ": cannot open");
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> chunk(1 << 16);
  int n = 0;
  while ((n = gzread(file, chunk.data(), static_cast<unsigned>(chunk.size()))) > 0)
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + n);
  int code = Z_OK;
  const char* message = gzerror(file, &code);
  const std::string error = n < 0 || code != Z_OK ? std::string(message) : std::string();
  gzclose(file);
  if (!error.empty()) throw DataError(path + ": corrupt gzip data (" + error + ")");
  return bytes;
}

/// An IDX array of unsigned bytes (type 0x08) with `rank` dimensions, from raw bytes.
inline torch::Tensor parse_idx(const std::vector<uint8_t>& bytes, int rank, const std::string& path) {
  const size_t header = 4 + 4 * static_cast<size_t>(rank);
  if (bytes.size() < header)
    throw DataError(path + ": truncated header (" + std::to_string(bytes.size()) + " of " +
                    std::to_string(header) + " bytes)");
  if (bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 || bytes[3] != rank)
    throw DataError(path + ": bad magic number: not an IDX file of unsigned bytes with " +
                    std::to_string(rank) + " dimension(s)");
  std::vector<int64_t> sizes;
  uint64_t count = 1;
  for (int d = 0; d < rank; ++d) {
    const uint8_t* p = bytes.data() + 4 + 4 * d;
    const uint64_t size = (uint64_t{p[0]} << 24) | (uint64_t{p[1]} << 16) | (uint64_t{p[2]} << 8) | p[3];
    if (size == 0 || count > (uint64_t{1} << 40) / size)
      throw DataError(path + ": bad dimension " + std::to_string(d) + " (" + std::to_string(size) + ")");
    count *= size;
    sizes.push_back(static_cast<int64_t>(size));
  }
  if (bytes.size() - header != count)
    throw DataError(path + ": payload is " + std::to_string(bytes.size() - header) +
                    " bytes, the header says " + std::to_string(count));
  return torch::from_blob(const_cast<uint8_t*>(bytes.data() + header), sizes, torch::kUInt8).clone();
}

/// One split ("train" or "t10k") of Fashion-MNIST from `dir`.
inline Dataset read_fashion_mnist(const std::string& dir, const std::string& split) {
  const std::string images_path = dir + "/" + split + "-images-idx3-ubyte.gz";
  const std::string labels_path = dir + "/" + split + "-labels-idx1-ubyte.gz";
  const torch::Tensor images = parse_idx(read_gzip(images_path), 3, images_path);
  const torch::Tensor labels = parse_idx(read_gzip(labels_path), 1, labels_path).to(torch::kLong);
  if (images.size(1) != 28 || images.size(2) != 28)
    throw DataError(images_path + ": images are " + std::to_string(images.size(1)) + "x" +
                    std::to_string(images.size(2)) + ", not 28x28");
  if (images.size(0) != labels.size(0))
    throw DataError(labels_path + ": " + std::to_string(labels.size(0)) + " labels for " +
                    std::to_string(images.size(0)) + " images");
  if (labels.max().item<int64_t>() > 9) throw DataError(labels_path + ": a label is above 9");
  return {images.unsqueeze(1).to(torch::kFloat).div_(255), labels, 10};
}

inline std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path + ": cannot open");
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// Records of a CIFAR binary file: `label_bytes` label bytes (the one used is `label_index`,
/// whose values must be < classes; CIFAR-100's coarse label < 20) and a 3x32x32 image each.
/// The file must hold a whole, non-zero number of records (the distributions have 10 000 per
/// file, 50 000 in CIFAR-100's train.bin).
inline Dataset parse_cifar(const std::vector<uint8_t>& bytes, const std::string& path, int label_bytes,
                           int label_index, int64_t classes) {
  constexpr int64_t kPixels = 3 * 32 * 32;
  const int64_t record = label_bytes + kPixels;
  const int64_t size = static_cast<int64_t>(bytes.size());
  if (size == 0 || size % record != 0)
    throw DataError(path + ": " + std::to_string(size) + " bytes is not a whole number of " +
                    std::to_string(record) + "-byte records");
  const int64_t records = size / record;
  torch::Tensor images = torch::empty({records, 3, 32, 32}, torch::kUInt8);
  torch::Tensor labels = torch::empty({records}, torch::kLong);
  uint8_t* pixels = images.data_ptr<uint8_t>();
  int64_t* label = labels.data_ptr<int64_t>();
  for (int64_t r = 0; r < records; ++r) {
    const uint8_t* p = bytes.data() + r * record;
    for (int b = 0; b < label_bytes; ++b) {
      const int64_t limit = b == label_index ? classes : (classes == 100 ? 20 : classes);
      if (p[b] >= limit)
        throw DataError(path + ": record " + std::to_string(r) + " has label " + std::to_string(p[b]) +
                        ", outside [0, " + std::to_string(limit) + ")");
    }
    label[r] = p[label_index];
    std::copy(p + label_bytes, p + record, pixels + r * kPixels);
  }
  return {images.to(torch::kFloat).div_(255), labels, classes};
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
    Dataset part = parse_cifar(read_file(file), file, 1, 0, 10);
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
  return parse_cifar(read_file(file), file, 2, 1, 100);
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
