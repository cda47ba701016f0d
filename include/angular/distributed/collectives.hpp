#pragma once
// The few collectives of the class-sharded losses, over a c10d::ProcessGroup (Gloo on the CPU,
// NCCL on CUDA), each waited for before it returns; public for the data-parallel code around
// them (angular-train's synchronised BatchNorm and gradient sums use them). Ranks may hold
// batches of different sizes: rows travel padded to the largest batch, whose size one small
// all-gather tells every rank.

#include <angular/detail/torch_version.hpp>

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace angular::detail {
/// The flat all-gather (`output` holds world_size copies of `input`'s size) and reduce-scatter
/// (the reverse), waited for, under their names in this LibTorch.
inline void all_gather_flat(c10d::ProcessGroup& group, at::Tensor& output, at::Tensor& input) {
#if ANGULAR_TORCH_2_15_OR_NEWER
  group.all_gather_single(output, input)->wait();
#else
  group._allgather_base(output, input)->wait();
#endif
}
inline void reduce_scatter_flat(c10d::ProcessGroup& group, at::Tensor& output, at::Tensor& input) {
#if ANGULAR_TORCH_2_15_OR_NEWER
  group.reduce_scatter_single(output, input)->wait();
#else
  group._reduce_scatter_base(output, input)->wait();
#endif
}
}  // namespace angular::detail

namespace angular::distributed {

using ProcessGroupPtr = c10::intrusive_ptr<c10d::ProcessGroup>;

/// A process group as an autograd node keeps it for its backward: weakly. The caller owns the
/// group; a loss tensor kept past destroy_process_group must not keep the group and its threads
/// alive into the interpreter's shutdown, where their destruction aborts the process.
class SavedGroup {
 public:
  explicit SavedGroup(const ProcessGroupPtr& group) : group_(group) {}
  ProcessGroupPtr get() const {
    ProcessGroupPtr group = group_.lock();
    TORCH_CHECK(group, "angular: the process group of this sharded loss was destroyed before its backward ran");
    return group;
  }

 private:
  c10::weak_intrusive_ptr<c10d::ProcessGroup> group_;
};

/// Every rank's `t`, of the same shape on every rank, stacked: [world_size, ...t's shape].
inline at::Tensor all_gather_stacked(const ProcessGroupPtr& group, const at::Tensor& t) {
  at::Tensor input = t.contiguous().view({-1});  // the flat gather concatenates along dim 0
  at::Tensor gathered = at::empty({group->getSize() * input.numel()}, input.options());
  detail::all_gather_flat(*group, gathered, input);
  std::vector<int64_t> sizes = t.sizes().vec();
  sizes.insert(sizes.begin(), group->getSize());
  return gathered.view(sizes);
}

/// Every rank's value of a small int64 vector, [world_size, n] (on the CPU).
inline at::Tensor all_gather_values(const ProcessGroupPtr& group, const std::vector<int64_t>& values,
                                    const at::Device& device) {
  return all_gather_stacked(group, at::tensor(values, at::TensorOptions().dtype(at::kLong)).to(device)).cpu();
}

/// How the ranks' rows lie in the gathered batch: rank r's b_r rows start at offsets[r].
struct RowLayout {
  std::vector<int64_t> rows, offsets;
  int64_t padded = 0, total = 0;  // the largest b_r; Σ b_r
};

inline RowLayout row_layout(const at::Tensor& counts /* [world_size] int64, CPU */) {
  RowLayout layout;
  for (int64_t r = 0; r < counts.size(0); ++r) {
    const int64_t b = counts[r].item<int64_t>();
    layout.rows.push_back(b);
    layout.offsets.push_back(layout.total);
    layout.total += b;
    layout.padded = std::max(layout.padded, b);
  }
  return layout;
}

/// The ranks' rows [b_r, ...] concatenated in rank order, [Σ b_r, ...].
inline at::Tensor all_gather_rows(const ProcessGroupPtr& group, const at::Tensor& rows, const RowLayout& layout) {
  std::vector<int64_t> padded_sizes = rows.sizes().vec();
  padded_sizes[0] = layout.padded;
  at::Tensor padded = at::zeros(padded_sizes, rows.options());
  padded.narrow(0, 0, rows.size(0)).copy_(rows);
  padded_sizes[0] = layout.padded * group->getSize();
  at::Tensor gathered = at::empty(padded_sizes, rows.options());
  detail::all_gather_flat(*group, gathered, padded);
  if (layout.padded * group->getSize() == layout.total) return gathered;
  std::vector<at::Tensor> parts;
  for (size_t r = 0; r < layout.rows.size(); ++r)
    parts.push_back(gathered.narrow(0, static_cast<int64_t>(r) * layout.padded, layout.rows[r]));
  return at::cat(parts);
}

/// Σ over the ranks of rows [Σ b_r, ...], each rank receiving its own b_r rows.
inline at::Tensor reduce_scatter_rows(const ProcessGroupPtr& group, const at::Tensor& rows, const RowLayout& layout) {
  const int64_t rank = group->getRank();
  std::vector<int64_t> sizes = rows.sizes().vec();
  at::Tensor input = rows.contiguous();
  if (layout.padded * group->getSize() != layout.total) {
    sizes[0] = layout.padded * group->getSize();
    input = at::zeros(sizes, rows.options());
    for (size_t r = 0; r < layout.rows.size(); ++r)
      input.narrow(0, static_cast<int64_t>(r) * layout.padded, layout.rows[r])
          .copy_(rows.narrow(0, layout.offsets[r], layout.rows[r]));
  }
  sizes[0] = layout.padded;
  at::Tensor output = at::empty(sizes, rows.options());
  detail::reduce_scatter_flat(*group, output, input);
  return output.narrow(0, 0, layout.rows[rank]);
}

/// `t` reduced over the ranks in place (c10d::ReduceOp::SUM or MAX); returns t.
inline at::Tensor& all_reduce_(const ProcessGroupPtr& group, at::Tensor& t, c10d::ReduceOp op) {
  std::vector<at::Tensor> tensors{t};
  c10d::AllreduceOptions options;
  options.reduceOp = op;
  group->allreduce(tensors, options)->wait();
  return t;
}

}  // namespace angular::distributed
