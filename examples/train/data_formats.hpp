#pragma once
// The dataset file formats, decoded from bytes without LibTorch, so that the fuzz targets
// (fuzz/) run exactly the code angular-train runs: gzip, IDX arrays of unsigned bytes
// (Fashion-MNIST) and CIFAR-10/100 records. Every field is checked against the bytes there
// are before anything is sized by it; errors are DataErrors that name the file and what is
// wrong.

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace train {

/// A file the trainer reads is missing, truncated or malformed.
struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The most a gzip file may decompress to: 5× Fashion-MNIST's largest file, and a bound on
/// what a small corrupt file can make the reader allocate.
constexpr size_t kMaxInflatedBytes = size_t{256} << 20;

/// The decompressed content of gzip bytes (one member or several, concatenated); bytes that
/// do not start with gzip's magic number are returned as they are, as zlib's gzread does.
inline std::vector<uint8_t> inflate_gzip(const std::vector<uint8_t>& bytes, const std::string& name) {
  if (bytes.size() < 2 || bytes[0] != 0x1f || bytes[1] != 0x8b) return bytes;
  if (bytes.size() > UINT32_MAX) throw DataError(name + ": larger than 4 GiB");
  z_stream stream{};
  if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK) throw DataError(name + ": cannot start zlib");
  std::vector<uint8_t> out;
  std::string error;
  stream.next_in = const_cast<Bytef*>(bytes.data());
  stream.avail_in = static_cast<uInt>(bytes.size());
  uint8_t chunk[1 << 15];
  while (error.empty()) {
    stream.next_out = chunk;
    stream.avail_out = sizeof chunk;
    const int code = inflate(&stream, Z_NO_FLUSH);
    const size_t produced = sizeof chunk - stream.avail_out;
    if (out.size() + produced > kMaxInflatedBytes) {
      error = "decompresses to more than " + std::to_string(kMaxInflatedBytes >> 20) + " MiB";
      break;
    }
    out.insert(out.end(), chunk, chunk + produced);
    if (code == Z_STREAM_END) {
      const size_t used = bytes.size() - stream.avail_in;
      if (used == bytes.size()) break;
      // Another member may follow; anything else after the end is corruption.
      if (bytes.size() - used < 2 || bytes[used] != 0x1f || bytes[used + 1] != 0x8b)
        error = "bytes after the end of the gzip data";
      else if (inflateReset(&stream) != Z_OK)
        error = "cannot restart zlib";
    } else if (code == Z_BUF_ERROR) {  // no input left before the end of the data
      error = "truncated";
    } else if (code != Z_OK) {
      error = stream.msg != nullptr ? stream.msg : "corrupt data";
    }
  }
  inflateEnd(&stream);
  if (!error.empty()) throw DataError(name + ": corrupt gzip data (" + error + ")");
  return out;
}

/// The layout of an IDX array of unsigned bytes: its sizes, and where its payload starts.
struct IdxLayout {
  std::vector<int64_t> sizes;
  size_t payload_offset = 0;
};

/// Checks the header of an IDX array of unsigned bytes (type 0x08) with `rank` dimensions
/// against the bytes: magic number, non-zero sizes, and a payload of exactly their product
/// (which nothing allocates before it is compared with the bytes there are).
inline IdxLayout parse_idx(const std::vector<uint8_t>& bytes, int rank, const std::string& name) {
  const size_t header = 4 + 4 * static_cast<size_t>(rank);
  if (bytes.size() < header)
    throw DataError(name + ": truncated header (" + std::to_string(bytes.size()) + " of " + std::to_string(header) +
                    " bytes)");
  if (bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 || bytes[3] != rank)
    throw DataError(name + ": bad magic number: not an IDX file of unsigned bytes with " + std::to_string(rank) +
                    " dimension(s)");
  IdxLayout layout;
  layout.payload_offset = header;
  const uint64_t payload = bytes.size() - header;
  uint64_t count = 1;
  for (int d = 0; d < rank; ++d) {
    const uint8_t* p = bytes.data() + 4 + 4 * d;
    const uint64_t size = (uint64_t{p[0]} << 24) | (uint64_t{p[1]} << 16) | (uint64_t{p[2]} << 8) | p[3];
    if (size == 0 || count > (uint64_t{1} << 40) / size)  // no overflow: count ≤ 2^40, size < 2^32
      throw DataError(name + ": dimension " + std::to_string(d) + " is " + std::to_string(size) +
                      (size == 0 ? "" : ", making an array of over 2^40 bytes"));
    count *= size;
    layout.sizes.push_back(static_cast<int64_t>(size));
  }
  if (payload != count)
    throw DataError(name + ": payload is " + std::to_string(payload) + " bytes, the header says " +
                    std::to_string(count));
  return layout;
}

/// A Fashion-MNIST image file: 28×28 images.
inline IdxLayout fashion_mnist_images(const std::vector<uint8_t>& bytes, const std::string& name) {
  IdxLayout layout = parse_idx(bytes, 3, name);
  if (layout.sizes[1] != 28 || layout.sizes[2] != 28)
    throw DataError(name + ": images are " + std::to_string(layout.sizes[1]) + "x" + std::to_string(layout.sizes[2]) +
                    ", not 28x28");
  return layout;
}

/// A Fashion-MNIST label file: labels in [0, 10).
inline IdxLayout fashion_mnist_labels(const std::vector<uint8_t>& bytes, const std::string& name) {
  IdxLayout layout = parse_idx(bytes, 1, name);
  const auto above = std::find_if(bytes.begin() + layout.payload_offset, bytes.end(), [](uint8_t l) { return l > 9; });
  if (above != bytes.end())
    throw DataError(name + ": label " + std::to_string(above - bytes.begin() - layout.payload_offset) + " is " +
                    std::to_string(*above) + ", outside [0, 10)");
  return layout;
}

/// CIFAR's binary records: `label_bytes` label bytes (the one used is `label_index`; the
/// values must be < classes, CIFAR-100's coarse label < 20), then a 3×32×32 image.
struct CifarLayout {
  int label_bytes, label_index;
  int64_t classes;
  static constexpr int64_t kPixels = 3 * 32 * 32;
  int64_t record_bytes() const { return label_bytes + kPixels; }
  int64_t limit(int label_byte) const { return label_byte == label_index ? classes : (classes == 100 ? 20 : classes); }
};

inline constexpr CifarLayout kCifar10{1, 0, 10};
inline constexpr CifarLayout kCifar100{2, 1, 100};

/// The number of records in `bytes`: a whole, non-zero number of them (the distributions have
/// 10 000 per file, 50 000 in CIFAR-100's train.bin).
inline int64_t cifar_records(const std::vector<uint8_t>& bytes, const CifarLayout& layout, const std::string& name) {
  const int64_t size = static_cast<int64_t>(bytes.size());
  if (size == 0 || size % layout.record_bytes() != 0)
    throw DataError(name + ": " + std::to_string(size) + " bytes is not a whole number of " +
                    std::to_string(layout.record_bytes()) + "-byte records");
  return size / layout.record_bytes();
}

/// Writes the records' images ([records, 3, 32, 32] bytes) and labels, checking every label.
inline void decode_cifar(const std::vector<uint8_t>& bytes, const CifarLayout& layout, const std::string& name,
                         uint8_t* pixels, int64_t* labels) {
  const int64_t records = cifar_records(bytes, layout, name), record = layout.record_bytes();
  for (int64_t r = 0; r < records; ++r) {
    const uint8_t* p = bytes.data() + r * record;
    for (int b = 0; b < layout.label_bytes; ++b)
      if (p[b] >= layout.limit(b))
        throw DataError(name + ": record " + std::to_string(r) + " has label " + std::to_string(p[b]) +
                        ", outside [0, " + std::to_string(layout.limit(b)) + ")");
    labels[r] = p[layout.label_index];
    std::copy(p + layout.label_bytes, p + record, pixels + r * CifarLayout::kPixels);
  }
}

}  // namespace train
