#pragma once
// The files of a checkpoint, piece by piece, for the run folder's checkpoint (checkpoint.cpp)
// and the data-parallel head's re-split and export (head_shards.cpp): CRC-framed LibTorch
// archives, their header (epoch, loss settings, world size), a rank's training state, and the
// manifest's list of shards. Errors are DataErrors naming the file.

#include "checkpoint.hpp"

#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

namespace train {

std::string read_bytes(const std::filesystem::path& path);
torch::Tensor bytes_tensor(const std::string& bytes);
std::string archive_bytes(torch::serialize::OutputArchive& archive);
void load_framed(torch::serialize::InputArchive& archive, const std::string& bytes, const std::filesystem::path& path,
                 torch::Device device);

void write_header(torch::serialize::OutputArchive& archive, int64_t epoch, const std::string& loss_settings,
                  int64_t world_size);
int64_t read_int(torch::serialize::InputArchive& archive, const std::string& key, const std::filesystem::path& path,
                 const std::string& missing);

void write_state(torch::serialize::OutputArchive& archive, const TrainingState& state);
void read_state(torch::serialize::InputArchive& archive, const TrainingState& state, const std::filesystem::path& path,
                const std::string& saved_settings, const std::string& loss_settings);
void load_same_shapes(torch::nn::Module& module, torch::serialize::InputArchive& archive, const std::string& what,
                      const std::filesystem::path& path);
/// A checkpoint of a run of `saved_settings` (empty: older than them) is one of `loss_settings`.
void check_loss_settings(const std::filesystem::path& path, const std::string& saved_settings,
                         const std::string& loss_settings);

/// The shards a manifest lists, each a plain file name in `dir` that is there with the length
/// the manifest says, and the CRC-32 it names for each; `missing` says what a manifest without
/// the list lacks.
struct ListedShards {
  std::vector<std::filesystem::path> paths;
  torch::Tensor crcs;
};
ListedShards listed_shards(torch::serialize::InputArchive& manifest_archive, const std::filesystem::path& dir,
                           const std::filesystem::path& manifest, int64_t ranks, const std::string& missing);
std::filesystem::path shard_file(const std::filesystem::path& dir, const std::string& name,
                                 const std::filesystem::path& manifest);
void load_shard(torch::serialize::InputArchive& shard, const std::filesystem::path& path, int64_t crc,
                const std::filesystem::path& manifest, int64_t epoch, int64_t r, int64_t ranks, torch::Device device);

/// The first line of an error's message (LibTorch's may go on with context).
std::string first_line(const std::string& text);

/// This rank's state from the shards of a run of another number of ranks (head_shards.cpp).
void read_resharded_state(const std::vector<std::filesystem::path>& shards, const torch::Tensor& crcs,
                          const std::filesystem::path& manifest, int64_t epoch, const TrainingState& state,
                          const std::string& saved_settings, const std::string& loss_settings, torch::Device device);

}  // namespace train
