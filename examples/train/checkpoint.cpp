#include "checkpoint.hpp"

#include "data.hpp"
#include "run_files.hpp"

#include <algorithm>
#include <functional>
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

/// The momentum of parameter `index` of the first parameter group in an SGD archive, or an
/// undefined tensor where it has none yet.
torch::Tensor saved_momentum(torch::serialize::InputArchive& optimizer, size_t index) {
  torch::serialize::InputArchive groups, group, states, state;
  c10::IValue key;
  torch::Tensor momentum;
  if (!optimizer.try_read("param_groups", groups) || !groups.try_read("param_groups/0", group) ||
      !group.try_read("params/" + std::to_string(index), key) || !key.isString() ||
      !optimizer.try_read("state", states) || !states.try_read(key.toStringRef(), state) ||
      !state.try_read("momentum_buffer", momentum))
    return {};
  return momentum;
}

/// This rank's state from the shards of a run of another number of ranks: the model, the
/// optimizer's settings and every other parameter's state from rank 0's shard, and the class
/// vectors of this rank's classes with their momentum row by row from the shards that hold
/// them, read one at a time (the class ranges of both world sizes by class_range). The class
/// sampler's generator keeps its seed's state: the old ranks' draws have no new owner.
void read_resharded_state(const std::vector<fs::path>& shards, const torch::Tensor& crcs, const fs::path& manifest,
                          int64_t epoch, const TrainingState& state, const std::string& saved_settings,
                          const std::string& loss_settings, torch::Device device) {
  auto* head = dynamic_cast<ad::ShardedMarginLossImpl*>(&state.loss);
  if (head == nullptr) throw DataError(manifest.string() + ": a run of another world size needs the sharded head");
  const int64_t ranks = static_cast<int64_t>(shards.size()), classes = head->options.num_classes();
  const ad::ClassRange mine = head->classes();
  const int64_t per_class = head->weight.size(0) / std::max<int64_t>(mine.count, 1);
  const auto& params = state.optimizer.param_groups().at(0).params();
  const size_t index = static_cast<size_t>(
      std::find_if(params.begin(), params.end(), [&](const auto& p) { return p.is_same(head->weight); }) -
      params.begin());
  torch::Tensor weight = head->weight.detach().clone(), momentum;
  for (int64_t r = 0; r < ranks; ++r) {
    torch::serialize::InputArchive shard, model, loss, optimizer;
    load_shard(shard, shards[r], crcs[r].item<int64_t>(), manifest, epoch, r, ranks, device);
    if (!shard.try_read("model", model) || !shard.try_read("loss", loss) || !shard.try_read("optimizer", optimizer))
      throw DataError(shards[r].string() + ": no model, loss or optimizer state");
    if (r == 0) {
      load_same_shapes(state.model, model, "model tensor", shards[r]);
      for (auto& buffer : head->named_buffers()) {
        torch::Tensor saved;
        if (loss.try_read(buffer.key(), saved, /*is_buffer=*/true)) buffer.value().detach().copy_(saved);
      }
      if (!saved_settings.empty() && saved_settings != loss_settings)
        throw DataError(shards[r].string() + ": its run's loss is " + saved_settings + ", this run's " + loss_settings +
                        " (resume with the same loss options)");
      state.optimizer.load(optimizer);  // the head's momentum of rank 0's rows: replaced below
    }
    const ad::ClassRange theirs = ad::class_range(classes, r, ranks);
    const int64_t begin = std::max(mine.offset, theirs.offset),
                  end = std::min(mine.offset + mine.count, theirs.offset + theirs.count);
    if (begin >= end) continue;
    torch::Tensor rows;
    if (!loss.try_read("weight", rows)) throw DataError(shards[r].string() + ": no class vectors");
    const auto here = torch::indexing::Slice((begin - mine.offset) * per_class, (end - mine.offset) * per_class);
    const auto there = torch::indexing::Slice((begin - theirs.offset) * per_class, (end - theirs.offset) * per_class);
    weight.index_put_({here}, rows.index({there}));
    if (const torch::Tensor saved = saved_momentum(optimizer, index); saved.defined()) {
      if (!momentum.defined()) momentum = torch::zeros_like(weight);
      momentum.index_put_({here}, saved.index({there}));
    }
  }
  {
    torch::NoGradGuard no_grad;
    head->weight.copy_(weight);
  }
  auto found = state.optimizer.state().find(head->weight.unsafeGetTensorImpl());
  if (found != state.optimizer.state().end()) {
    auto* sgd = dynamic_cast<torch::optim::SGDParamState*>(found->second.get());
    if (sgd == nullptr || !momentum.defined())
      throw DataError(manifest.string() + ": no SGD momentum of the class vectors to re-split");
    sgd->momentum_buffer(momentum);
  }
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
  if (ranks != dp.size && (ranks == 1 || dp.size == 1))
    throw DataError(manifest.string() + ": the state of " + std::to_string(ranks) + " process(es), this run has " +
                    std::to_string(dp.size) + " (one process resumes one process's run; a data-parallel run any "
                    "number of ranks >= 2; angular-train --export-head writes the whole head for one process)");
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

  // The shards: every one there with the length the manifest says, those read intact and the
  // ones it names.
  torch::Tensor lengths, crcs;
  if (!archive.try_read("shard_bytes", lengths) || !archive.try_read("shard_crc32", crcs) || lengths.numel() != ranks ||
      crcs.numel() != ranks || lengths.scalar_type() != torch::kLong || crcs.scalar_type() != torch::kLong)
    throw DataError(manifest.string() + ": no state of rank " + rank + " and no list of shards");
  std::vector<fs::path> shards;
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
    shards.push_back(shard);
  }
  if (ranks != dp.size) {
    read_resharded_state(shards, crcs, manifest, epoch, state, saved_settings, loss_settings, device);
    return epoch;
  }
  torch::serialize::InputArchive shard;
  load_shard(shard, shards[dp.rank], crcs[dp.rank].item<int64_t>(), manifest, epoch, dp.rank, ranks, device);
  read_state(shard, state, shards[dp.rank], saved_settings, loss_settings);
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

void export_head(const fs::path& dir, const fs::path& path) {
  const fs::path manifest = checkpoint_path(dir);
  torch::serialize::InputArchive archive;
  load_framed(archive, read_bytes(manifest), manifest, torch::kCPU);
  const int64_t epoch = read_int(archive, "epoch", manifest, "no epoch (a checkpoint of an older angular-train?)");
  const int64_t ranks = read_int(archive, "world_size", manifest, "no world size");
  torch::Tensor crcs;
  if (ranks < 2 || !archive.try_read("shard_crc32", crcs) || crcs.numel() != ranks)
    throw DataError(manifest.string() + ": not the manifest of a data-parallel run's shards");
  // Each shard's class vectors in turn, twice: their sizes, then into the output.
  const auto each_shard = [&](const std::function<void(torch::serialize::InputArchive&, const torch::Tensor&)>& f) {
    for (int64_t r = 0; r < ranks; ++r) {
      c10::IValue name;
      if (!archive.try_read("shard" + std::to_string(r), name) || !name.isString())
        throw DataError(manifest.string() + ": no shard named for rank " + std::to_string(r));
      const fs::path file = shard_file(dir, name.toStringRef(), manifest);
      torch::serialize::InputArchive shard, loss;
      load_shard(shard, file, crcs[r].item<int64_t>(), manifest, epoch, r, ranks, torch::kCPU);
      torch::Tensor rows;
      if (!shard.try_read("loss", loss) || !loss.try_read("weight", rows))
        throw DataError(file.string() + ": no class vectors");
      f(loss, rows);
    }
  };
  int64_t total = 0, dim = 0;
  each_shard([&](torch::serialize::InputArchive&, const torch::Tensor& rows) {
    total += rows.size(0);
    dim = rows.size(1);
  });
  torch::Tensor weight = torch::empty({total, dim});
  torch::serialize::OutputArchive out;
  int64_t filled = 0;
  each_shard([&](torch::serialize::InputArchive& loss, const torch::Tensor& rows) {
    weight.narrow(0, filled, rows.size(0)).copy_(rows);
    filled += rows.size(0);
    if (filled != total) return;
    for (const char* statistic : {"norm_mean", "norm_std", "t"}) {  // alike on every rank: the last one's
      torch::Tensor value;
      if (loss.try_read(statistic, value, /*is_buffer=*/true)) out.write(statistic, value, /*is_buffer=*/true);
    }
  });
  out.write("weight", weight);
  std::ostringstream bytes;
  out.save_to(bytes);
  write_atomically(path, bytes.str());
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
