#include "run_files.hpp"

#include "data.hpp"

#include <angular/constants.hpp>

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace train {

namespace fs = std::filesystem;

void write_atomically(const fs::path& path, const std::function<void(const std::string&)>& write) {
  const std::string temporary = path.string() + ".tmp";
  write(temporary);
  fs::rename(temporary, path);
}

void write_atomically(const fs::path& path, const std::string& text) {
  write_atomically(path, [&](const std::string& temporary) {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) throw std::runtime_error(temporary + ": cannot write");
  });
}

namespace {

std::string read_text(const fs::path& path) {
  const std::vector<uint8_t> bytes = read_file(path.string());
  return std::string(bytes.begin(), bytes.end());
}

}  // namespace

void EpochLog::resume(int64_t epochs_done) {
  rows_ = fs::exists(path_) ? epoch_rows_up_to(read_text(path_), epochs_done) : std::string();
}

void EpochLog::append(const std::string& rows) {
  rows_ += rows;
  write_atomically(path_, header_ + "\n" + rows_);
}

RunFolder::RunFolder(const fs::path& dir)
    : dir_(dir),
      steps_(dir / "steps.csv", "epoch,step,loss,accuracy"),
      histograms_(dir / "histograms.csv", "epoch,class,bin_start,count") {
  fs::create_directories(dir_);
}

std::vector<EpochRow> RunFolder::resume(int64_t epochs_done) {
  steps_.resume(epochs_done);
  histograms_.resume(epochs_done);
  const fs::path metrics = dir_ / "metrics.csv";
  return parse_metrics_csv(read_text(metrics), epochs_done, metrics.string());
}

void RunFolder::write_metrics(const std::vector<EpochRow>& rows) const {
  write_atomically(dir_ / "metrics.csv", metrics_csv(rows));
}

void RunFolder::write_steps(const std::vector<StepRecord>& steps) {
  std::ostringstream out;
  out.precision(8);
  for (const auto& s : steps) out << s.epoch << ',' << s.step << ',' << s.loss << ',' << s.accuracy << "\n";
  steps_.append(out.str());
}

namespace {

/// histogram [C, bins] as rows epoch,class,bin_start,count, from one host copy.
std::string histogram_rows(int64_t epoch, const torch::Tensor& histogram) {
  const torch::Tensor counts = histogram.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t classes = counts.size(0), bins = counts.size(1);
  const int64_t* count = counts.data_ptr<int64_t>();
  std::ostringstream out;
  for (int64_t c = 0; c < classes; ++c)
    for (int64_t b = 0; b < bins; ++b)
      out << epoch << ',' << c << ',' << angular::kPi * static_cast<double>(b) / static_cast<double>(bins)
          << ',' << count[c * bins + b] << "\n";
  return out.str();
}

/// label,f0,f1,… for up to `per_class` features [N, D] of each label [N], from one host copy.
std::string feature_rows(const torch::Tensor& features, const torch::Tensor& labels, int64_t per_class) {
  const torch::Tensor f = features.to(torch::kCPU, torch::kDouble).contiguous();
  const torch::Tensor y = labels.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t rows = f.size(0), dim = f.size(1);
  std::ostringstream out;
  out << "label";
  for (int64_t d = 0; d < dim; ++d) out << ",f" << d;
  out << "\n";
  std::vector<int64_t> written;
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t label = y.data_ptr<int64_t>()[i];
    if (label >= static_cast<int64_t>(written.size())) written.resize(label + 1, 0);
    if (written[label]++ >= per_class) continue;
    out << label;
    const double* row = f.data_ptr<double>() + i * dim;
    for (int64_t d = 0; d < dim; ++d) out << ',' << static_cast<float>(row[d]);
    out << "\n";
  }
  return out.str();
}

}  // namespace

void RunFolder::write_evaluation(int64_t epoch, const Evaluation& evaluation) {
  histograms_.append(histogram_rows(epoch, evaluation.histogram));
  write_atomically(dir_ / "test_features.csv", feature_rows(evaluation.features, evaluation.labels, 200));
}

void RunFolder::write_summary(const nlohmann::json& summary) const {
  write_atomically(dir_ / "summary.json", summary.dump(2) + "\n");
}

nlohmann::json RunFolder::read_summary() const {
  const fs::path path = dir_ / "summary.json";
  if (!fs::exists(path)) return nullptr;
  nlohmann::json summary = nlohmann::json::parse(read_text(path), nullptr, /*allow_exceptions=*/false);
  return summary.is_discarded() ? nlohmann::json() : summary;
}

}  // namespace train
