#pragma once
// Reader of gzip-compressed IDX files (the MNIST / Fashion-MNIST format), with every field
// validated: errors name the file and what is wrong, and nothing is read past a buffer.

#include <torch/torch.h>
#include <zlib.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace examples {

struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The whole decompressed content of a gzip file (a plain file reads as itself).
inline std::vector<uint8_t> read_gzip(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) throw DataError(path + ": cannot open");
  std::vector<uint8_t> bytes;
  uint8_t chunk[1 << 16];
  int n = 0;
  while ((n = gzread(file, chunk, sizeof chunk)) > 0) bytes.insert(bytes.end(), chunk, chunk + n);
  int code = Z_OK;
  const char* message = gzerror(file, &code);
  const std::string error = n < 0 || code != Z_OK ? std::string(message) : std::string();
  gzclose(file);
  if (!error.empty()) throw DataError(path + ": corrupt gzip data (" + error + ")");
  return bytes;
}

/// An IDX tensor of unsigned bytes (type code 0x08) with `rank` dimensions, as uint8.
inline torch::Tensor read_idx(const std::string& path, int rank) {
  const std::vector<uint8_t> bytes = read_gzip(path);
  const size_t header = 4 + 4 * static_cast<size_t>(rank);
  if (bytes.size() < header)
    throw DataError(path + ": truncated header (" + std::to_string(bytes.size()) + " bytes)");
  if (bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 || bytes[3] != rank)
    throw DataError(path + ": bad magic number, expected an IDX file of unsigned bytes with " +
                    std::to_string(rank) + " dimensions");
  std::vector<int64_t> sizes;
  uint64_t count = 1;
  for (int d = 0; d < rank; ++d) {
    const uint8_t* p = bytes.data() + 4 + 4 * d;
    const uint64_t size = (uint64_t{p[0]} << 24) | (p[1] << 16) | (p[2] << 8) | p[3];
    if (size == 0 || count > (uint64_t{1} << 40) / size)
      throw DataError(path + ": bad dimension " + std::to_string(d) + " = " + std::to_string(size));
    count *= size;
    sizes.push_back(static_cast<int64_t>(size));
  }
  if (bytes.size() - header != count)
    throw DataError(path + ": payload is " + std::to_string(bytes.size() - header) +
                    " bytes, the header says " + std::to_string(count));
  return torch::from_blob(const_cast<uint8_t*>(bytes.data() + header), sizes, torch::kUInt8).clone();
}

struct Split {
  torch::Tensor images;  // [N, 1, 28, 28] float in [0, 1]
  torch::Tensor labels;  // [N] int64 in [0, 10)
};

/// One split ("train" or "t10k") of Fashion-MNIST from `dir`.
inline Split read_fashion_mnist(const std::string& dir, const std::string& split) {
  const std::string images_path = dir + "/" + split + "-images-idx3-ubyte.gz";
  const std::string labels_path = dir + "/" + split + "-labels-idx1-ubyte.gz";
  torch::Tensor images = read_idx(images_path, 3);
  torch::Tensor labels = read_idx(labels_path, 1).to(torch::kLong);
  if (images.size(1) != 28 || images.size(2) != 28)
    throw DataError(images_path + ": images are not 28x28");
  if (images.size(0) != labels.size(0))
    throw DataError(labels_path + ": " + std::to_string(labels.size(0)) + " labels for " +
                    std::to_string(images.size(0)) + " images");
  if (labels.max().item<int64_t>() > 9) throw DataError(labels_path + ": a label is above 9");
  return {images.unsqueeze(1).to(torch::kFloat).div_(255), labels};
}

}  // namespace examples
