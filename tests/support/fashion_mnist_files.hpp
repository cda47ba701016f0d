#pragma once
// Fashion-MNIST's files (gzip IDX) written by the tests: a tiny data set of its exact format,
// for the trainer's tests (tests/train_test.cpp, compare_test.cpp, distributed_train_test.cpp),
// and the fresh folders they write into.

#include <stdlib.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace angular::test {

/// A new empty folder. (mkdtemp, not std::filesystem::remove_all: LibTorch's wheel exports
/// its own GCC 13 copy of the latter, which crashes when called from GCC 12 code.)
inline std::filesystem::path fresh_dir(const std::string& name) {
  std::string pattern = (std::filesystem::temp_directory_path() / ("angular-" + name + "-XXXXXX")).string();
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + pattern);
  return pattern;
}

inline void write_gzip(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

/// The bytes of a file as a string.
inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// An IDX array of unsigned bytes of sizes `dims`.
inline std::vector<uint8_t> idx(std::vector<uint32_t> dims, const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> out = {0, 0, 0x08, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) out.insert(out.end(), {uint8_t(d >> 24), uint8_t(d >> 16), uint8_t(d >> 8), uint8_t(d)});
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

/// A tiny Fashion-MNIST in `dir`: `n` training and `n` test images, image i of class i % 10,
/// which its brightest rows tell.
inline void write_tiny_fashion_mnist(const std::filesystem::path& dir, uint32_t n) {
  std::vector<uint8_t> pixels, labels;
  for (uint32_t i = 0; i < n; ++i) {
    labels.push_back(static_cast<uint8_t>(i % 10));
    for (int p = 0; p < 784; ++p)
      pixels.push_back(static_cast<uint8_t>(p / 78 == static_cast<int>(i % 10) ? 220 : (i * 13 + p) % 40));
  }
  for (const char* split : {"train", "t10k"}) {
    write_gzip(dir / (std::string(split) + "-images-idx3-ubyte.gz"), idx({n, 28, 28}, pixels));
    write_gzip(dir / (std::string(split) + "-labels-idx1-ubyte.gz"), idx({n}, labels));
  }
}

}  // namespace angular::test
