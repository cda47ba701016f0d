// A data-parallel checkpoint's head on another number of ranks, and exported whole: the class
// vectors are re-split by class_range, reading one shard at a time.

#include "checkpoint_archive.hpp"

#include "data.hpp"
#include "run_files.hpp"

#include <angular/distributed.hpp>

#include <algorithm>
#include <sstream>

namespace train {

namespace fs = std::filesystem;
namespace ad = angular::distributed;

namespace {

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

}  // namespace

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
      check_loss_settings(shards[r], saved_settings, loss_settings);
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

void export_head(const fs::path& dir, const fs::path& path) {
  const fs::path manifest = checkpoint_path(dir);
  torch::serialize::InputArchive archive;
  load_framed(archive, read_bytes(manifest), manifest, torch::kCPU);
  const int64_t epoch = read_int(archive, "epoch", manifest, "no epoch (a checkpoint of an older angular-train?)");
  const int64_t ranks = read_int(archive, "world_size", manifest, "no world size");
  torch::Tensor head_rows;
  if (ranks < 2 || !archive.try_read("head_rows", head_rows) || head_rows.numel() != ranks)
    throw DataError(manifest.string() + ": not the manifest of a data-parallel run's shards with their head sizes "
                    "(one of an older angular-train: resume it for an epoch to write one)");
  const ListedShards shards =
      listed_shards(archive, dir, manifest, ranks, "not the manifest of a data-parallel run's shards");
  torch::Tensor weight;
  torch::serialize::OutputArchive out;
  int64_t filled = 0;
  for (int64_t r = 0; r < ranks; ++r) {
    torch::serialize::InputArchive shard, loss;
    load_shard(shard, shards.paths[r], shards.crcs[r].item<int64_t>(), manifest, epoch, r, ranks, torch::kCPU);
    torch::Tensor rows;
    if (!shard.try_read("loss", loss) || !loss.try_read("weight", rows) || rows.size(0) != head_rows[r].item<int64_t>())
      throw DataError(shards.paths[r].string() + ": no class vectors of the size " + manifest.filename().string() +
                      " says");
    if (r == 0) {
      weight = torch::empty({head_rows.sum().item<int64_t>(), rows.size(1)}, rows.options());
      for (const char* statistic : {"norm_mean", "norm_std", "t"}) {  // alike on every rank
        torch::Tensor value;
        if (loss.try_read(statistic, value, /*is_buffer=*/true)) out.write(statistic, value, /*is_buffer=*/true);
      }
    }
    weight.narrow(0, filled, rows.size(0)).copy_(rows);
    filled += rows.size(0);
  }
  out.write("weight", weight);
  std::ostringstream bytes;
  out.save_to(bytes);
  write_atomically(path, bytes.str());
}

}  // namespace train
