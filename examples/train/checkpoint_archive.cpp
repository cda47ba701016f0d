#include "checkpoint_archive.hpp"

#include "data.hpp"
#include "run_files.hpp"

#include <system_error>
#include <vector>

namespace train {

namespace fs = std::filesystem;

namespace {

/// The shapes of a module's parameters and buffers, by name.
std::vector<std::pair<std::string, std::vector<int64_t>>> shapes(const torch::nn::Module& module) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  for (const auto& p : module.named_parameters()) out.emplace_back(p.key(), p.value().sizes().vec());
  for (const auto& b : module.named_buffers()) out.emplace_back(b.key(), b.value().sizes().vec());
  return out;
}

}  // namespace

std::string read_bytes(const fs::path& path) {
  const std::vector<uint8_t> bytes = read_file(path.string());
  return std::string(bytes.begin(), bytes.end());
}

torch::Tensor bytes_tensor(const std::string& bytes) {
  return torch::from_blob(const_cast<char*>(bytes.data()), {static_cast<int64_t>(bytes.size())}, torch::kUInt8);
}

std::string archive_bytes(torch::serialize::OutputArchive& archive) {
  std::ostringstream bytes;
  archive.save_to(bytes);
  return bytes.str();
}

/// The archive of a framed checkpoint file's bytes, after checking its frame.
void load_framed(torch::serialize::InputArchive& archive, const std::string& bytes, const fs::path& path,
                 torch::Device device) {
  const std::string_view inside = unframe_checkpoint(bytes, path.string());
  archive.load_from(inside.data(), inside.size(), device);
}

/// Writes the model, the loss, the optimizer and the sampler's state into `archive`.
void write_state(torch::serialize::OutputArchive& archive, const TrainingState& state) {
  torch::serialize::OutputArchive model, loss, optimizer;
  state.model.save(model);
  state.loss.save(loss);
  state.optimizer.save(optimizer);
  archive.write("model", model);
  archive.write("loss", loss);
  archive.write("optimizer", optimizer);
  if (state.sampler.defined()) archive.write("class_sampler", state.sampler.get_state());
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

/// The epoch, the loss settings and the world size every checkpoint file begins with.
void write_header(torch::serialize::OutputArchive& archive, int64_t epoch, const std::string& loss_settings,
                  int64_t world_size) {
  archive.write("epoch", torch::tensor(epoch));
  archive.write("loss_settings", c10::IValue(loss_settings));
  archive.write("world_size", torch::tensor(world_size));
}

int64_t read_int(torch::serialize::InputArchive& archive, const std::string& key, const fs::path& path,
                 const std::string& missing) {
  torch::Tensor value;
  if (!archive.try_read(key, value) || value.numel() != 1 || value.scalar_type() != torch::kLong)
    throw DataError(path.string() + ": " + missing);
  return value.item<int64_t>();
}

void check_loss_settings(const fs::path& path, const std::string& saved_settings, const std::string& loss_settings) {
  if (!saved_settings.empty() && saved_settings != loss_settings)
    throw DataError(path.string() + ": its run's loss is " + saved_settings + ", this run's " + loss_settings +
                    " (resume with the same loss options)");
}

/// Loads a state that write_state wrote into `state`; `loss_settings` is checked once the
/// model and the loss are in (where a checkpoint of other options is told by its shapes).
void read_state(torch::serialize::InputArchive& archive, const TrainingState& state, const fs::path& path,
                const std::string& saved_settings, const std::string& loss_settings) {
  torch::serialize::InputArchive model, loss, optimizer;
  if (!archive.try_read("model", model) || !archive.try_read("loss", loss) || !archive.try_read("optimizer", optimizer))
    throw DataError(path.string() + ": no model, loss or optimizer state");
  load_same_shapes(state.model, model, "model tensor", path);
  load_same_shapes(state.loss, loss, "loss tensor", path);
  check_loss_settings(path, saved_settings, loss_settings);
  state.optimizer.load(optimizer);
  torch::Tensor sampler;
  if (state.sampler.defined() && archive.try_read("class_sampler", sampler)) {
    at::Generator generator = state.sampler;
    std::lock_guard<std::mutex> lock(generator.mutex());
    try {
      generator.set_state(sampler.cpu());
    } catch (const c10::Error&) {
      throw DataError(path.string() + ": its class sampler's state is not one of a CPU generator");
    }
  }
}

/// `name` as a file of the run folder: a plain file name, nothing that leads elsewhere.
fs::path shard_file(const fs::path& dir, const std::string& name, const fs::path& manifest) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
    throw DataError(manifest.string() + ": the shard name '" + name + "' is not a file name");
  return dir / name;
}

/// Rank `r`'s shard of a checkpoint of `ranks` ranks after `epoch`, its frame, its CRC-32 (the
/// one the manifest names) and its header checked.
void load_shard(torch::serialize::InputArchive& shard, const fs::path& path, int64_t crc, const fs::path& manifest,
                int64_t epoch, int64_t r, int64_t ranks, torch::Device device) {
  const std::string bytes = read_bytes(path);
  const std::string_view inside = unframe_checkpoint(bytes, path.string());  // its own CRC first
  if (static_cast<int64_t>(framed_crc32(bytes)) != crc)
    throw DataError(path.string() + ": not the shard " + manifest.filename().string() +
                    " names (another CRC-32: of another epoch or run?)");
  shard.load_from(inside.data(), inside.size(), device);
  if (read_int(shard, "epoch", path, "no epoch") != epoch || read_int(shard, "rank", path, "no rank") != r ||
      read_int(shard, "world_size", path, "no world size") != ranks)
    throw DataError(path.string() + ": not rank " + std::to_string(r) + "'s shard of epoch " + std::to_string(epoch) +
                    " of " + std::to_string(ranks) + " ranks");
}

ListedShards listed_shards(torch::serialize::InputArchive& manifest_archive, const fs::path& dir,
                           const fs::path& manifest, int64_t ranks, const std::string& missing) {
  ListedShards out;
  torch::Tensor lengths;
  if (!manifest_archive.try_read("shard_bytes", lengths) || !manifest_archive.try_read("shard_crc32", out.crcs) ||
      lengths.numel() != ranks || out.crcs.numel() != ranks || lengths.scalar_type() != torch::kLong ||
      out.crcs.scalar_type() != torch::kLong)
    throw DataError(manifest.string() + ": " + missing);
  for (int64_t r = 0; r < ranks; ++r) {
    c10::IValue name;
    if (!manifest_archive.try_read("shard" + std::to_string(r), name) || !name.isString())
      throw DataError(manifest.string() + ": no shard named for rank " + std::to_string(r));
    const fs::path shard = shard_file(dir, name.toStringRef(), manifest);
    std::error_code error;
    const auto size = fs::file_size(shard, error);
    if (error)
      throw DataError(shard.string() + ": missing (" + manifest.filename().string() + " names it as rank " +
                      std::to_string(r) + "'s shard)");
    if (static_cast<int64_t>(size) != lengths[r].item<int64_t>())
      throw DataError(shard.string() + ": " + std::to_string(size) + " bytes, " + manifest.filename().string() +
                      " says " + std::to_string(lengths[r].item<int64_t>()) +
                      " (truncated, or of another checkpoint?)");
    out.paths.push_back(shard);
  }
  return out;
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace train
