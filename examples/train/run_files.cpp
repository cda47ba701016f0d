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

std::string training_state(const torch::nn::Module& model, const torch::nn::Module& loss,
                           const torch::optim::Optimizer& optimizer) {
  torch::serialize::OutputArchive archive, model_archive, loss_archive, optimizer_archive;
  model.save(model_archive);
  loss.save(loss_archive);
  optimizer.save(optimizer_archive);
  archive.write("model", model_archive);
  archive.write("loss", loss_archive);
  archive.write("optimizer", optimizer_archive);
  std::ostringstream bytes;
  archive.save_to(bytes);
  return bytes.str();
}

void save_checkpoint(const fs::path& path, int64_t epoch, const std::string& loss_settings,
                     const std::vector<std::string>& rank_states) {
  torch::serialize::OutputArchive archive;
  archive.write("epoch", torch::tensor(epoch));
  archive.write("loss_settings", c10::IValue(loss_settings));
  archive.write("world_size", torch::tensor(static_cast<int64_t>(rank_states.size())));
  for (size_t r = 0; r < rank_states.size(); ++r) {
    const std::string& state = rank_states[r];
    archive.write("rank" + std::to_string(r),
                  torch::from_blob(const_cast<char*>(state.data()), {static_cast<int64_t>(state.size())}, torch::kUInt8));
  }
  std::ostringstream bytes;
  archive.save_to(bytes);
  write_atomically(path, frame_checkpoint(bytes.str()));
}

namespace {

/// The shapes of a module's parameters and buffers, by name.
std::vector<std::pair<std::string, std::vector<int64_t>>> shapes(const torch::nn::Module& module) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  for (const auto& p : module.named_parameters()) out.emplace_back(p.key(), p.value().sizes().vec());
  for (const auto& b : module.named_buffers()) out.emplace_back(b.key(), b.value().sizes().vec());
  return out;
}

/// Loads `archive` into `module`, which must keep the shapes it had (LibTorch replaces a
/// tensor by the archive's whatever its shape).
void load_same_shapes(torch::nn::Module& module, torch::serialize::InputArchive& archive, const std::string& what,
                      const fs::path& path) {
  const auto before = shapes(module);
  module.load(archive);
  const auto after = shapes(module);
  for (size_t i = 0; i < before.size(); ++i)
    if (after[i].second != before[i].second)
      throw DataError(path.string() + ": " + what + " " + before[i].first + " is " +
                      c10::str(c10::IntArrayRef(after[i].second)) + ", this run's is " +
                      c10::str(c10::IntArrayRef(before[i].second)) + " (a checkpoint of other options?)");
}

}  // namespace

int64_t load_checkpoint(const fs::path& path, torch::Device device, torch::nn::Module& model, torch::nn::Module& loss,
                        torch::optim::Optimizer& optimizer, const std::string& loss_settings, int64_t rank,
                        int64_t world_size) {
  const std::string bytes = read_text(path);
  const std::string_view archive_bytes = unframe_checkpoint(bytes, path.string());
  torch::serialize::InputArchive archive;
  archive.load_from(archive_bytes.data(), archive_bytes.size(), torch::kCPU);
  torch::Tensor epoch, ranks, state;
  if (!archive.try_read("epoch", epoch) || !archive.try_read("world_size", ranks))
    throw DataError(path.string() + ": no epoch or world size (a checkpoint of an older angular-train?)");
  if (ranks.item<int64_t>() != world_size)
    throw DataError(path.string() + ": the state of " + std::to_string(ranks.item<int64_t>()) +
                    " process(es), this run has " + std::to_string(world_size) + " (resume with the same WORLD_SIZE)");
  if (!archive.try_read("rank" + std::to_string(rank), state) || state.scalar_type() != torch::kUInt8)
    throw DataError(path.string() + ": no state of rank " + std::to_string(rank));
  state = state.contiguous();
  torch::serialize::InputArchive state_archive, model_archive, loss_archive, optimizer_archive;
  state_archive.load_from(reinterpret_cast<const char*>(state.data_ptr<uint8_t>()), static_cast<size_t>(state.numel()),
                          device);
  state_archive.read("model", model_archive);
  state_archive.read("loss", loss_archive);
  state_archive.read("optimizer", optimizer_archive);
  load_same_shapes(model, model_archive, "model tensor", path);
  load_same_shapes(loss, loss_archive, "loss tensor", path);
  c10::IValue saved_settings;
  if (archive.try_read("loss_settings", saved_settings) &&
      (!saved_settings.isString() || saved_settings.toStringRef() != loss_settings))
    throw DataError(path.string() + ": its run's loss is " +
                    (saved_settings.isString() ? saved_settings.toStringRef() : std::string("unreadable")) +
                    ", this run's " + loss_settings + " (resume with the same loss options)");
  optimizer.load(optimizer_archive);
  const int64_t done = epoch.item<int64_t>();
  if (done < 1) throw DataError(path.string() + ": epoch " + std::to_string(done) + " is not a completed epoch");
  return done;
}

}  // namespace train
