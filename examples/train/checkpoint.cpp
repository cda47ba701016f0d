#include "checkpoint.hpp"

#include "checkpoint_archive.hpp"
#include "data.hpp"
#include "run_files.hpp"

#include <system_error>
#include <vector>

namespace train {

namespace fs = std::filesystem;
namespace ad = angular::distributed;

namespace {

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
  const ListedShards listed =
      listed_shards(archive, dir, manifest, ranks, "no state of rank " + rank + " and no list of shards");
  const std::vector<fs::path>& shards = listed.paths;
  const torch::Tensor& crcs = listed.crcs;
  if (ranks != dp.size) {
    read_resharded_state(shards, crcs, manifest, epoch, state, saved_settings, loss_settings, device);
    return epoch;
  }
  torch::serialize::InputArchive shard;
  load_shard(shard, shards[dp.rank], crcs[dp.rank].item<int64_t>(), manifest, epoch, dp.rank, ranks, device);
  read_state(shard, state, shards[dp.rank], saved_settings, loss_settings);
  return epoch;
}

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
  // Each rank's class vectors, for export_head to size the whole head before reading a shard.
  const auto head_weight = state.loss.named_parameters(/*recurse=*/false).find("weight");
  const int64_t head_rows = head_weight != nullptr ? head_weight->size(0) : 0;
  const torch::Tensor written = ad::all_gather_values(dp.group, {length, crc, head_rows}, dp.device);  // [N, 3]
  const fs::path manifest = checkpoint_path(dir);
  if (dp.writes()) {
    try {
      torch::serialize::OutputArchive archive;
      write_header(archive, epoch, loss_settings, dp.size);
      for (int64_t r = 0; r < dp.size; ++r)
        archive.write("shard" + std::to_string(r), c10::IValue(shard_name(epoch, r, dp.size)));
      archive.write("shard_bytes", written.select(1, 0).clone());
      archive.write("shard_crc32", written.select(1, 1).clone());
      archive.write("head_rows", written.select(1, 2).clone());
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
