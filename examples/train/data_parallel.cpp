#include "data_parallel.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

namespace train {

namespace ad = angular::distributed;

DataParallel join_ranks(torch::Device device, std::chrono::seconds timeout) {
  const auto env = angular::distributed::launch_environment();
  DataParallel dp;
  if (!env || env->world_size == 1) return dp;
  dp.group = angular::distributed::init_process_group(*env, device, timeout);
  TORCH_CHECK(dp.group->getSize() == env->world_size, "the process group has ", dp.group->getSize(),
              " ranks but WORLD_SIZE is ", env->world_size);
  dp.rank = dp.group->getRank();
  dp.size = dp.group->getSize();
  dp.device = device;
  return dp;
}

angular::distributed::ClassRange share_of(const DataParallel& dp, int64_t rows) {
  return angular::distributed::class_range(rows, dp.rank, dp.size);
}

void sum_gradients(const DataParallel& dp, const std::vector<torch::Tensor>& parameters) {
  if (!dp.active() || parameters.empty()) return;
  std::vector<torch::Tensor> grads;
  for (const auto& p : parameters) grads.push_back(p.grad().defined() ? p.grad().flatten() : torch::zeros_like(p).flatten());
  torch::Tensor flat = torch::cat(grads);
  ad::all_reduce_(dp.group, flat, c10d::ReduceOp::SUM);
  int64_t offset = 0;
  for (const auto& p : parameters) {
    const torch::Tensor summed = flat.narrow(0, offset, p.numel()).view_as(p);
    if (p.grad().defined())
      p.mutable_grad().copy_(summed);
    else
      p.mutable_grad() = summed.clone();
    offset += p.numel();
  }
}

void sum_over_ranks(const DataParallel& dp, torch::Tensor& t) {
  if (dp.active()) ad::all_reduce_(dp.group, t, c10d::ReduceOp::SUM);
}

std::vector<torch::Tensor> gather_to_root(const DataParallel& dp, const torch::Tensor& rows) {
  if (!dp.active()) return {rows};
  const ad::RowLayout layout = ad::row_layout(ad::all_gather_values(dp.group, {rows.size(0)}, rows.device()).select(1, 0));
  // Gloo gathers tensors of one shape: rows travel padded to the largest part.
  std::vector<int64_t> sizes = rows.sizes().vec();
  sizes[0] = layout.padded;
  torch::Tensor padded = torch::zeros(sizes, rows.options());
  padded.narrow(0, 0, rows.size(0)).copy_(rows);
  std::vector<std::vector<torch::Tensor>> outputs;  // the root's only
  if (dp.writes()) {
    outputs.emplace_back();
    for (int64_t r = 0; r < dp.size; ++r) outputs[0].push_back(torch::empty_like(padded));
  }
  std::vector<torch::Tensor> inputs{padded};
  c10d::GatherOptions options;
  options.rootRank = 0;
  dp.group->gather(outputs, inputs, options)->wait();
  std::vector<torch::Tensor> parts;
  if (dp.writes())
    for (int64_t r = 0; r < dp.size; ++r) parts.push_back(outputs[0][r].narrow(0, 0, layout.rows[r]));
  return parts;
}

torch::Tensor gather_to_all(const DataParallel& dp, const torch::Tensor& rows) {
  if (!dp.active()) return rows;
  const ad::RowLayout layout = ad::row_layout(ad::all_gather_values(dp.group, {rows.size(0)}, dp.device).select(1, 0));
  return ad::all_gather_rows(dp.group, rows.contiguous(), layout);
}

torch::Tensor global_argmax(const DataParallel& dp, const torch::Tensor& score, const torch::Tensor& index) {
  if (!dp.active()) return index;
  torch::Tensor best = score.clone();
  ad::all_reduce_(dp.group, best, c10d::ReduceOp::MAX);
  torch::Tensor winner = index.masked_fill(score != best, std::numeric_limits<int64_t>::max());
  ad::all_reduce_(dp.group, winner, c10d::ReduceOp::MIN);
  return winner;
}

std::string first_error(const DataParallel& dp, const std::string& error) {
  if (!dp.active()) return error;
  torch::Tensor mine = torch::zeros({kErrorBytes}, torch::kUInt8);
  const int64_t length = std::min<int64_t>(static_cast<int64_t>(error.size()), kErrorBytes);
  std::memcpy(mine.data_ptr<uint8_t>(), error.data(), static_cast<size_t>(length));
  const torch::Tensor all = ad::all_gather_stacked(dp.group, mine.to(dp.device)).cpu();
  for (int64_t r = 0; r < dp.size; ++r) {
    const auto* bytes = reinterpret_cast<const char*>(all[r].data_ptr<uint8_t>());
    const std::string text(bytes, strnlen(bytes, kErrorBytes));
    if (!text.empty()) return text;
  }
  return "";
}

}  // namespace train
