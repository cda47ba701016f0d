#include "data_parallel.hpp"

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

std::vector<std::string> gather_to_root(const DataParallel& dp, const std::string& bytes) {
  const torch::Tensor local =
      torch::from_blob(const_cast<char*>(bytes.data()), {static_cast<int64_t>(bytes.size())}, torch::kUInt8);
  std::vector<std::string> out;
  for (const torch::Tensor& part : gather_to_root(dp, local)) {
    const torch::Tensor p = part.contiguous();
    out.emplace_back(reinterpret_cast<const char*>(p.data_ptr<uint8_t>()), static_cast<size_t>(p.numel()));
  }
  return out;
}

torch::Tensor sharded_predictions(const DataParallel& dp, const torch::Tensor& features,
                                  const torch::Tensor& weight_shard, int64_t offset, int64_t vectors_per_class,
                                  bool cosine) {
  torch::NoGradGuard no_grad;
  const ad::RowLayout layout =
      ad::row_layout(ad::all_gather_values(dp.group, {features.size(0)}, features.device()).select(1, 0));
  const torch::Tensor x = ad::all_gather_rows(dp.group, features.contiguous(), layout);
  const torch::Tensor w = weight_shard.to(x.scalar_type());
  const int64_t classes = w.size(0) / vectors_per_class;
  torch::Tensor best = torch::full({x.size(0)}, -std::numeric_limits<double>::infinity(), x.options().dtype(torch::kDouble));
  torch::Tensor index = torch::zeros({x.size(0)}, best.options());
  if (classes > 0) {
    const torch::Tensor scores =
        cosine ? angular::functional::cosine_matrix(x, w) : angular::functional::linear_logits(x, w);
    const auto [value, argmax] = scores.view({x.size(0), classes, vectors_per_class}).amax(2).max(1);
    best = value.to(torch::kDouble);
    index = (argmax + offset).to(torch::kDouble);
  }
  // Every rank's best class and its score, [N, 2, B]: the first rank with the highest wins, as
  // argmax takes the first of equal logits.
  const torch::Tensor all = ad::all_gather_stacked(dp.group, torch::stack({best, index}));
  const torch::Tensor winner = all.select(1, 0).argmax(0, /*keepdim=*/true);
  const torch::Tensor predicted = all.select(1, 1).gather(0, winner).squeeze(0).to(torch::kLong);
  return predicted.narrow(0, layout.offsets[dp.rank], layout.rows[dp.rank]);
}

}  // namespace train
