#include "run_files.hpp"

#include <angular/detail/constants.hpp>

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

std::string metrics_csv(const std::vector<EpochRow>& rows) {
  std::ostringstream out;
  out << kMetricsHeader << "\n";
  out.precision(8);
  for (const auto& r : rows)
    out << r.epoch << ',' << r.lr << ',' << r.train_loss << ',' << r.train_acc << ',' << r.test_acc << ',' << r.wc_intra
        << ',' << r.w_inter << ',' << r.c_inter << ',' << r.seconds << ',' << r.p_at_1 << ',' << r.r_precision << ','
        << r.map_at_r << "\n";
  return out.str();
}

std::vector<EpochRow> read_metrics_csv(const fs::path& path, int64_t epochs) {
  std::vector<EpochRow> rows;
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);  // the header
  while (static_cast<int64_t>(rows.size()) < epochs && std::getline(in, line)) {
    EpochRow r{};
    r.p_at_1 = r.r_precision = r.map_at_r = std::nan("");
    // sscanf, not streams: it reads the "nan" that an epoch's metrics may hold.
    if (std::sscanf(line.c_str(), "%" SCNd64 ",%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf", &r.epoch, &r.lr,
                    &r.train_loss, &r.train_acc, &r.test_acc, &r.wc_intra, &r.w_inter, &r.c_inter, &r.seconds,
                    &r.p_at_1, &r.r_precision, &r.map_at_r) >= 9)
      rows.push_back(r);
  }
  return rows;
}

void EpochLog::resume(int64_t epochs_done) {
  rows_.clear();
  std::ifstream in(path_);
  std::string line;
  std::getline(in, line);  // the header
  while (std::getline(in, line)) {
    int64_t epoch = 0;
    if (std::sscanf(line.c_str(), "%" SCNd64 ",", &epoch) == 1 && epoch >= 1 && epoch <= epochs_done)
      rows_ += line + "\n";
  }
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

bool RunFolder::has_checkpoint() const { return fs::exists(checkpoint_path()); }

std::vector<EpochRow> RunFolder::resume(int64_t epochs_done) {
  steps_.resume(epochs_done);
  histograms_.resume(epochs_done);
  return read_metrics_csv(dir_ / "metrics.csv", epochs_done);
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
      out << epoch << ',' << c << ',' << angular::detail::kPi * static_cast<double>(b) / static_cast<double>(bins)
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

void save_checkpoint(const fs::path& path, int64_t epoch, const torch::nn::Module& model, const torch::nn::Module& loss,
                     const torch::optim::Optimizer& optimizer) {
  torch::serialize::OutputArchive archive, model_archive, loss_archive, optimizer_archive;
  model.save(model_archive);
  loss.save(loss_archive);
  optimizer.save(optimizer_archive);
  archive.write("model", model_archive);
  archive.write("loss", loss_archive);
  archive.write("optimizer", optimizer_archive);
  archive.write("epoch", torch::tensor(epoch));
  write_atomically(path, [&](const std::string& temporary) { archive.save_to(temporary); });
}

int64_t load_checkpoint(const fs::path& path, torch::Device device, torch::nn::Module& model, torch::nn::Module& loss,
                        torch::optim::Optimizer& optimizer) {
  torch::serialize::InputArchive archive, model_archive, loss_archive, optimizer_archive;
  archive.load_from(path.string(), device);
  archive.read("model", model_archive);
  archive.read("loss", loss_archive);
  archive.read("optimizer", optimizer_archive);
  model.load(model_archive);
  loss.load(loss_archive);
  optimizer.load(optimizer_archive);
  torch::Tensor epoch;
  archive.read("epoch", epoch);
  return epoch.item<int64_t>();
}

}  // namespace train
