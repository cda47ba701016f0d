#pragma once
// The formats of a run folder that --resume reads back, without LibTorch, so that the fuzz
// targets (fuzz/) run exactly the code angular-train runs: the checkpoint's frame, metrics.csv
// and the per-epoch logs. Errors are DataErrors that name the file and what is wrong.

#include "data_formats.hpp"

#include <zlib.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace train {

struct EpochRow {
  int64_t epoch;
  double lr, train_loss, train_acc, test_acc, wc_intra, w_inter, c_inter, seconds;
  double p_at_1, r_precision, map_at_r;  // retrieval of the test set against itself
};

constexpr const char* kMetricsHeader =
    "epoch,lr,train_loss,train_acc,test_acc,wc_intra,w_inter,c_inter,seconds,p_at_1,r_precision,map_at_r";

inline std::string metrics_csv(const std::vector<EpochRow>& rows) {
  std::ostringstream out;
  out << kMetricsHeader << "\n";
  out.precision(8);
  for (const auto& r : rows)
    out << r.epoch << ',' << r.lr << ',' << r.train_loss << ',' << r.train_acc << ',' << r.test_acc << ',' << r.wc_intra
        << ',' << r.w_inter << ',' << r.c_inter << ',' << r.seconds << ',' << r.p_at_1 << ',' << r.r_precision << ','
        << r.map_at_r << "\n";
  return out.str();
}

/// The number that is the whole of `field` (std::from_chars: no locale, and a value out of
/// range is an error, not undefined behaviour as with sscanf).
template <class Number>
bool parse_number(std::string_view field, Number& value) {
  const auto [end, error] = std::from_chars(field.data(), field.data() + field.size(), value);
  return error == std::errc() && end == field.data() + field.size();
}

/// The epoch a log line starts with ("3,…"), or 0 if it starts with none.
inline int64_t leading_epoch(std::string_view line) {
  int64_t epoch = 0;
  return parse_number(line.substr(0, line.find(',')), epoch) ? epoch : 0;
}

/// A metrics.csv row: 12 numbers, or the first 9 (rows written before the retrieval columns
/// existed, which read those as NaN).
inline bool parse_metrics_row(std::string_view line, EpochRow& r) {
  r.p_at_1 = r.r_precision = r.map_at_r = std::nan("");
  double* const numbers[] = {&r.lr,      &r.train_loss, &r.train_acc, &r.test_acc,    &r.wc_intra, &r.w_inter,
                             &r.c_inter, &r.seconds,    &r.p_at_1,    &r.r_precision, &r.map_at_r};
  std::vector<std::string_view> fields;
  for (size_t begin = 0;;) {
    const size_t comma = line.find(',', begin);
    fields.push_back(line.substr(begin, comma == std::string_view::npos ? comma : comma - begin));
    if (comma == std::string_view::npos) break;
    begin = comma + 1;
  }
  if (fields.size() != 9 && fields.size() != 12) return false;
  if (!parse_number(fields[0], r.epoch)) return false;
  for (size_t f = 1; f < fields.size(); ++f)
    if (!parse_number(fields[f], *numbers[f - 1])) return false;
  return true;
}

/// The rows of epochs 1 … epochs_done of a metrics.csv, which must have them in order after
/// its header.
inline std::vector<EpochRow> parse_metrics_csv(const std::string& text, int64_t epochs_done, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  if (!std::getline(in, line) || line.rfind("epoch,", 0) != 0) throw DataError(name + ": no metrics header");
  std::vector<EpochRow> rows;
  for (int64_t number = 2; static_cast<int64_t>(rows.size()) < epochs_done && std::getline(in, line); ++number) {
    EpochRow r{};
    const int64_t expected = static_cast<int64_t>(rows.size()) + 1;
    if (!parse_metrics_row(line, r) || r.epoch != expected)
      throw DataError(name + ": line " + std::to_string(number) + " is not the row of epoch " +
                      std::to_string(expected));
    rows.push_back(r);
  }
  if (static_cast<int64_t>(rows.size()) < epochs_done)
    throw DataError(name + ": " + std::to_string(rows.size()) + " rows for the " + std::to_string(epochs_done) +
                    " epochs the checkpoint holds");
  return rows;
}

/// The lines of an epoch log (a CSV whose rows start with their epoch) that belong to epochs
/// 1 … epochs_done, without its header; other lines are dropped.
inline std::string epoch_rows_up_to(const std::string& text, int64_t epochs_done) {
  std::istringstream in(text);
  std::string line, rows;
  std::getline(in, line);  // the header
  while (std::getline(in, line)) {
    const int64_t epoch = leading_epoch(line);
    if (epoch >= 1 && epoch <= epochs_done) rows += line + "\n";
  }
  return rows;
}

/// checkpoint.pt is LibTorch's archive in a frame of 20 bytes: a magic number, the archive's
/// length (8 bytes) and its CRC-32 (4 bytes), little-endian. A truncated or corrupted file is
/// caught here, before LibTorch parses it.
constexpr char kCheckpointMagic[8] = {'A', 'N', 'G', 'C', 'K', 'P', 'T', '1'};
constexpr size_t kCheckpointHeader = 20;

inline uint32_t crc32_of(const char* data, size_t size) {
  return static_cast<uint32_t>(crc32_z(0, reinterpret_cast<const Bytef*>(data), size));
}

inline std::string frame_checkpoint(const std::string& archive) {
  std::string out(kCheckpointMagic, sizeof kCheckpointMagic);
  const uint64_t length = archive.size();
  const uint32_t crc = crc32_of(archive.data(), archive.size());
  for (int b = 0; b < 8; ++b) out.push_back(static_cast<char>((length >> (8 * b)) & 0xff));
  for (int b = 0; b < 4; ++b) out.push_back(static_cast<char>((crc >> (8 * b)) & 0xff));
  return out + archive;
}

/// The CRC-32 a framed checkpoint's header gives its archive (unframe_checkpoint checks it):
/// what a data-parallel checkpoint's manifest records of each shard.
inline uint32_t framed_crc32(const std::string& bytes) {
  uint32_t crc = 0;
  if (bytes.size() < kCheckpointHeader) return 0;
  for (int b = 0; b < 4; ++b) crc |= uint32_t{static_cast<uint8_t>(bytes[16 + b])} << (8 * b);
  return crc;
}

/// The archive inside a framed checkpoint (a view into `bytes`), after checking the frame.
inline std::string_view unframe_checkpoint(const std::string& bytes, const std::string& name) {
  if (bytes.size() < kCheckpointHeader || bytes.compare(0, sizeof kCheckpointMagic, kCheckpointMagic,
                                                        sizeof kCheckpointMagic) != 0)
    throw DataError(name + ": not a checkpoint of angular-train");
  uint64_t length = 0;
  for (int b = 0; b < 8; ++b) length |= uint64_t{static_cast<uint8_t>(bytes[8 + b])} << (8 * b);
  const uint64_t present = bytes.size() - kCheckpointHeader;
  if (length != present)
    throw DataError(name + ": the header says " + std::to_string(length) + " bytes of archive, the file has " +
                    std::to_string(present) + " (truncated or overwritten?)");
  if (crc32_of(bytes.data() + kCheckpointHeader, present) != framed_crc32(bytes))
    throw DataError(name + ": corrupt (its CRC-32 does not match)");
  return std::string_view(bytes).substr(kCheckpointHeader);
}

}  // namespace train
