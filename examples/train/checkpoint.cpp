#include "checkpoint.hpp"

#include "data.hpp"
#include "run_files.hpp"

#include <sstream>
#include <system_error>
#include <vector>

namespace train {

namespace fs = std::filesystem;
namespace ad = angular::distributed;

namespace {

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

/// Loads a state that write_state wrote into `state`; `loss_settings` is checked once the
/// model and the loss are in (where a checkpoint of other options is told by its shapes).
void read_state(torch::serialize::InputArchive& archive, const TrainingState& state, const fs::path& path,
                const std::string& saved_settings, const std::string& loss_settings) {
  torch::serialize::InputArchive model, loss, optimizer;
  if (!archive.try_read("model", model) || !archive.try_read("loss", loss) || !archive.try_read("optimizer", optimizer))
    throw DataError(path.string() + ": no model, loss or optimizer state");
  load_same_shapes(state.model, model, "model tensor", path);
  load_same_shapes(state.loss, loss, "loss tensor", path);
  if (!saved_settings.empty() && saved_settings != loss_settings)
    throw DataError(path.string() + ": its run's loss is " + saved_settings + ", this run's " + loss_settings +
                    " (resume with the same loss options)");
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

/// Loads this rank's state from the checkpoint in `dir`; errors as DataErrors naming the file.
int64_t load_rank_state(const fs::path& dir, torch::Device device, const TrainingState& state,
                        const std::string& loss_settings, const DataParallel& dp) {
  const fs::path manifest = checkpoint_path(dir);
  torch::serialize::InputArchive archive;
  load_framed(archive, read_bytes(manifest), manifest, torch::kCPU);
  const int64_t epoch = read_int(archive, "epoch", manifest, "no epoch (a checkpoint of an older angular-train?)");
  const int64_t ranks =
      read_int(archive, "world_size", manifest, "no world size (a checkpoint of an older angular-train?)");
  if (ranks != dp.size)
    throw DataError(manifest.string() + ": the state of " + std::to_string(ranks) + " process(es), this run has " +
                    std::to_string(dp.size) + " (resume with the same WORLD_SIZE)");
  if (epoch < 1) throw DataError(manifest.string() + ": epoch " + std::to_string(epoch) + " is not a completed epoch");
  c10::IValue settings;
  std::string saved_settings;  // none in checkpoints that predate them
  if (archive.try_read("loss_settings", settings))
    saved_settings = settings.isString() ? settings.toStringRef() : std::string("unreadable");
  const std::string rank = std::to_string(dp.rank);

  // This rank's state inside the checkpoint: one process's, or a data-parallel run's of an
  // angular-train that gathered every rank's state into one file.
  torch::Tensor inline_state;
  if (archive.try_read("rank" + rank, inline_state)) {
    if (inline_state.scalar_type() != torch::kUInt8) throw DataError(manifest.string() + ": no state of rank " + rank);
    inline_state = inline_state.contiguous();
    torch::serialize::InputArchive state_archive;
    state_archive.load_from(reinterpret_cast<const char*>(inline_state.data_ptr<uint8_t>()),
                            static_cast<size_t>(inline_state.numel()), device);
    read_state(state_archive, state, manifest, saved_settings, loss_settings);
    return epoch;
  }

  // The shards: every one there with the length the manifest says, this rank's intact and the
  // one it names.
  torch::Tensor lengths, crcs;
  if (!archive.try_read("shard_bytes", lengths) || !archive.try_read("shard_crc32", crcs) || lengths.numel() != ranks ||
      crcs.numel() != ranks || lengths.scalar_type() != torch::kLong || crcs.scalar_type() != torch::kLong)
    throw DataError(manifest.string() + ": no state of rank " + rank + " and no list of shards");
  fs::path mine;
  for (int64_t r = 0; r < ranks; ++r) {
    c10::IValue name;
    if (!archive.try_read("shard" + std::to_string(r), name) || !name.isString())
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
    if (r == dp.rank) mine = shard;
  }
  const std::string bytes = read_bytes(mine);
  torch::serialize::InputArchive shard;
  const std::string_view inside = unframe_checkpoint(bytes, mine.string());  // its own CRC first
  if (static_cast<int64_t>(framed_crc32(bytes)) != crcs[dp.rank].item<int64_t>())
    throw DataError(mine.string() + ": not the shard " + manifest.filename().string() +
                    " names (another CRC-32: of another epoch or run?)");
  shard.load_from(inside.data(), inside.size(), device);
  if (read_int(shard, "epoch", mine, "no epoch") != epoch || read_int(shard, "rank", mine, "no rank") != dp.rank ||
      read_int(shard, "world_size", mine, "no world size") != ranks)
    throw DataError(mine.string() + ": not rank " + rank + "'s shard of epoch " + std::to_string(epoch) + " of " +
                    std::to_string(ranks) + " ranks");
  read_state(shard, state, mine, saved_settings, loss_settings);
  return epoch;
}

/// The first line of an error's message (LibTorch's may go on with context).
std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace

std::string shard_name(int64_t epoch, int64_t rank, int64_t world_size) {
  return "checkpoint-epoch" + std::to_string(epoch) + "-rank" + std::to_string(rank) + "-of-" +
         std::to_string(world_size) + ".pt";
}

void save_checkpoint(const fs::path& dir, int64_t epoch, const std::string& loss_settings, const TrainingState& state,
                     const DataParallel& dp) {
  if (!dp.active()) {
    torch::serialize::OutputArchive archive, rank_state;
    write_header(archive, epoch, loss_settings, 1);
    write_state(rank_state, state);
    const std::string bytes = archive_bytes(rank_state);
    archive.write("rank0", bytes_tensor(bytes));
    write_atomically(checkpoint_path(dir), frame_checkpoint(archive_bytes(archive)));
    return;
  }
  const fs::path shard = dir / shard_name(epoch, dp.rank, dp.size);
  std::string error;
  int64_t length = 0, crc = 0;
  try {
    fs::create_directories(dir);
    torch::serialize::OutputArchive archive;
    write_header(archive, epoch, loss_settings, dp.size);
    archive.write("rank", torch::tensor(dp.rank));
    write_state(archive, state);
    const std::string framed = frame_checkpoint(archive_bytes(archive));
    write_atomically(shard, framed);
    length = static_cast<int64_t>(framed.size());
    crc = framed_crc32(framed);
  } catch (const std::exception& e) {
    error = shard.string() + ": cannot write it: " + first_line(e.what());
  }
  if (const std::string first = first_error(dp, error); !first.empty()) throw std::runtime_error(first);
  const torch::Tensor written = ad::all_gather_values(dp.group, {length, crc}, dp.device);  // [N, 2]
  const fs::path manifest = checkpoint_path(dir);
  if (dp.writes()) {
    try {
      torch::serialize::OutputArchive archive;
      write_header(archive, epoch, loss_settings, dp.size);
      for (int64_t r = 0; r < dp.size; ++r)
        archive.write("shard" + std::to_string(r), c10::IValue(shard_name(epoch, r, dp.size)));
      archive.write("shard_bytes", written.select(1, 0).clone());
      archive.write("shard_crc32", written.select(1, 1).clone());
      write_atomically(manifest, frame_checkpoint(archive_bytes(archive)));
    } catch (const std::exception& e) {
      error = manifest.string() + ": cannot write it: " + first_line(e.what());
    }
  }
  if (const std::string first = first_error(dp, error); !first.empty()) throw std::runtime_error(first);
  // The manifest names this epoch's shards now: the last epoch's are no checkpoint's.
  std::error_code ignored;
  if (epoch > 1) fs::remove(dir / shard_name(epoch - 1, dp.rank, dp.size), ignored);
}

bool has_checkpoint(const fs::path& dir, const DataParallel& dp) {
  torch::Tensor found = torch::tensor(static_cast<int64_t>(fs::exists(checkpoint_path(dir)))).to(dp.device);
  if (dp.active()) ad::all_reduce_(dp.group, found, c10d::ReduceOp::MAX);
  return found.item<int64_t>() != 0;
}

int64_t load_checkpoint(const fs::path& dir, torch::Device device, const TrainingState& state,
                        const std::string& loss_settings, const DataParallel& dp) {
  if (!dp.active()) return load_rank_state(dir, device, state, loss_settings, dp);
  std::string error;
  int64_t epoch = 0;
  try {
    epoch = load_rank_state(dir, device, state, loss_settings, dp);
  } catch (const c10::Error& e) {
    error = checkpoint_path(dir).string() + ": unreadable: " + first_line(e.what_without_backtrace());
  } catch (const std::exception& e) {
    error = first_line(e.what());
  }
  if (const std::string first = first_error(dp, error); !first.empty()) throw DataError(first);
  return epoch;
}

}  // namespace train
