#pragma once
// The all-gather of the ranks' rows as an autograd function: its backward is the
// reduce-scatter that sums every rank's gradient of the gathered rows and hands each rank
// the rows it contributed. And the converse for per-sample values known on every rank: a
// rank's own rows, whose backward gathers every rank's upstream gradient.

#include <angular/distributed/collectives.hpp>

#include <torch/csrc/autograd/custom_function.h>

namespace angular::detail {

/// A group in an autograd node's saved data (weakly: SavedGroup).
struct GroupHolder : torch::CustomClassHolder {
  explicit GroupHolder(const distributed::ProcessGroupPtr& group) : group(group) {}
  distributed::SavedGroup group;
};

inline c10::IValue save_group(const distributed::ProcessGroupPtr& group) {
  return c10::IValue::make_capsule(c10::make_intrusive<GroupHolder>(group));
}

inline distributed::ProcessGroupPtr saved_group(const c10::IValue& saved) {
  return c10::static_intrusive_pointer_cast<GroupHolder>(saved.toCapsule())->group.get();
}

struct GatherRows : torch::autograd::Function<GatherRows> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& rows,
                            const distributed::ProcessGroupPtr& group, const distributed::RowLayout& layout) {
    ctx->saved_data["group"] = save_group(group);
    ctx->saved_data["rows"] = layout.rows;
    return distributed::all_gather_rows(group, rows.contiguous(), layout);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto group = saved_group(ctx->saved_data["group"]);
    const distributed::RowLayout layout = distributed::row_layout(at::tensor(ctx->saved_data["rows"].toIntVector()));
    return {distributed::reduce_scatter_rows(group, grads[0], layout), {}, {}};
  }
};

/// Rank r's rows of a [B, ...] tensor that every rank holds alike (per-sample losses): each
/// rank's backward receives the upstream gradient of every row, gathered from its rank.
struct OwnRows : torch::autograd::Function<OwnRows> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& all_rows,
                            const distributed::ProcessGroupPtr& group, const distributed::RowLayout& layout) {
    ctx->saved_data["group"] = save_group(group);
    ctx->saved_data["rows"] = layout.rows;
    const int64_t rank = group->getRank();
    return all_rows.narrow(0, layout.offsets[rank], layout.rows[rank]).clone();
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto group = saved_group(ctx->saved_data["group"]);
    const distributed::RowLayout layout = distributed::row_layout(at::tensor(ctx->saved_data["rows"].toIntVector()));
    return {distributed::all_gather_rows(group, grads[0].contiguous(), layout), {}, {}};
  }
};

}  // namespace angular::detail
