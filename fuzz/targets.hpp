#pragma once
// The fuzz targets: each reads its input as angular-train reads one kind of file and must end
// in success or a train::DataError — never a crash, a sanitizer report, another exception or
// an allocation sized by an unchecked field — and what it accepts must satisfy the invariant
// that the LibTorch side relies on (checked with __builtin_trap, which the fuzzer reports).
// fuzz/entry.cpp makes a libFuzzer binary of one; tests/fuzz_regressions_test.cpp runs the
// files of tests/fuzz-regressions/ through them in the test suite.

#include <train/data_formats.hpp>
#include <train/run_formats.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fuzz {

inline void require(bool invariant) {
  if (!invariant) __builtin_trap();
}

/// `run` with DataError as a clean rejection.
template <class Run>
void rejecting_cleanly(Run run) {
  try {
    run();
  } catch (const train::DataError&) {
  }
}

/// A gzip (or plain) IDX file, as Fashion-MNIST's images and as its labels: what is accepted
/// has a payload of exactly the header's sizes, which read_idx hands to torch::from_blob.
inline void fashion_mnist(const uint8_t* data, size_t size) {
  rejecting_cleanly([&] {
    const std::vector<uint8_t> bytes = train::inflate_gzip(std::vector<uint8_t>(data, data + size), "input");
    for (const auto check : {train::fashion_mnist_images, train::fashion_mnist_labels}) {
      rejecting_cleanly([&] {
        const train::IdxLayout layout = check(bytes, "input");
        uint64_t count = 1;
        for (const int64_t s : layout.sizes) count *= static_cast<uint64_t>(s);
        require(layout.payload_offset + count == bytes.size());
      });
    }
  });
}

/// A CIFAR-10 and a CIFAR-100 binary file: every record decoded into buffers of the size
/// the record count gives, each label within its range.
inline void cifar(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes(data, data + size);
  for (const train::CifarLayout& layout : {train::kCifar10, train::kCifar100}) {
    rejecting_cleanly([&] {
      const int64_t records = train::cifar_records(bytes, layout, "input");
      require(records * layout.record_bytes() == static_cast<int64_t>(size));
      std::vector<uint8_t> pixels(static_cast<size_t>(records * train::CifarLayout::kPixels));
      std::vector<int64_t> labels(static_cast<size_t>(records));
      train::decode_cifar(bytes, layout, "input", pixels.data(), labels.data());
      for (const int64_t label : labels) require(label >= 0 && label < layout.classes);
    });
  }
}

/// A checkpoint: what is accepted is the frame of its archive, byte for byte.
inline void checkpoint(const uint8_t* data, size_t size) {
  rejecting_cleanly([&] {
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    const std::string_view archive = train::unframe_checkpoint(bytes, "input");
    require(train::frame_checkpoint(std::string(archive)) == bytes);
  });
}

/// metrics.csv and an epoch log as --resume reads them back after `epochs` epochs (the first
/// byte): the metrics are the rows of epochs 1 … epochs, the log only lines of those epochs.
inline void run_csv(const uint8_t* data, size_t size) {
  if (size == 0) return;
  const int64_t epochs = data[0] % 16;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  rejecting_cleanly([&] {
    const std::vector<train::EpochRow> rows = train::parse_metrics_csv(text, epochs, "metrics.csv");
    require(static_cast<int64_t>(rows.size()) == epochs);
    for (size_t i = 0; i < rows.size(); ++i) require(rows[i].epoch == static_cast<int64_t>(i) + 1);
  });
  const std::string kept = train::epoch_rows_up_to(text, epochs);
  require(kept.size() <= text.size() + 1);
}

struct Target {
  const char* name;
  void (*run)(const uint8_t*, size_t);
};

inline constexpr Target kTargets[] = {
    {"fashion_mnist", fashion_mnist}, {"cifar", cifar}, {"checkpoint", checkpoint}, {"run_csv", run_csv}};

}  // namespace fuzz
