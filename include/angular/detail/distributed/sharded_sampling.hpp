#pragma once
// Class sampling (detail/class_sampling.hpp) over the ranks of a sharded loss: each rank keeps
// its positives and draws from its own classes, and the kept classes of all ranks, in rank
// order, form the classes of the loss. Every rank knows every rank's positives (the batch is
// gathered) and hence how many classes each keeps and where any label lands: nothing but the
// class weights of the kept classes (where there are any) crosses the ranks.

#include <angular/detail/class_sampling.hpp>
#include <angular/detail/distributed/sharded_cross_entropy.hpp>

namespace angular::detail {

/// A sharded problem over the kept classes: this rank's kept vectors, the gathered labels
/// among the kept classes, and the spec whose classes are the kept ones.
struct SampledShard {
  at::Tensor weight, target;
  ShardedSpec spec;
};

inline SampledShard sample_shard(const ShardedSpec& s, const at::Tensor& weight, const at::Tensor& target,
                                 const ClassSampling& sampling) {
  const int64_t ranks = s.group->getSize(), rank = s.group->getRank();
  const int64_t ignore_index = s.spec.ignore_index;
  const at::Tensor labelled = target != ignore_index;
  const at::Tensor labels = std::get<0>(at::_unique(target.masked_select(labelled).cpu(), /*sorted=*/true));
  // Per rank: where its classes start, how many positives lie before them, and where its kept
  // classes start among the kept classes of all ranks.
  std::vector<int64_t> starts, positives_before, kept_starts;
  int64_t kept_total = 0;
  at::Tensor own_positives;
  for (int64_t r = 0; r < ranks; ++r) {
    const ClassRange range = class_range(s.num_classes, r, ranks);
    const int64_t before = at::searchsorted(labels, at::scalar_tensor(range.offset, labels.options())).item<int64_t>();
    const int64_t upto =
        at::searchsorted(labels, at::scalar_tensor(range.offset + range.count, labels.options())).item<int64_t>();
    starts.push_back(range.offset);
    positives_before.push_back(before);
    kept_starts.push_back(kept_total);
    kept_total += kept_class_count(upto - before, range.count, sampling.rate);
    if (r == rank) own_positives = labels.narrow(0, before, upto - before) - range.offset;
  }
  const at::Tensor kept = kept_classes(own_positives, s.classes.count, sampling.rate, sampling.generator);
  write_record(sampling, kept, s.classes.offset);

  // A label's place: its place among all positives, less those of the ranks before its owner,
  // plus where the owner's kept classes start.
  const auto on_device = [&](const std::vector<int64_t>& v) { return at::tensor(v, target.options()); };
  const at::Tensor owner = at::searchsorted(on_device(starts), target, /*out_int32=*/false, /*right=*/true) - 1;
  const at::Tensor shift = (on_device(kept_starts) - on_device(positives_before)).index_select(0, owner.clamp(0, ranks - 1));
  const at::Tensor place = at::searchsorted(labels.to(target.device()), target) + shift;

  SampledShard out;
  out.spec = s;
  out.spec.num_classes = kept_total;
  out.spec.classes = {kept_starts[rank], kept.numel()};
  out.spec.spec.ignore_index = kept_ignore_index(ignore_index);
  out.target = at::where(labelled, place, out.spec.spec.ignore_index);
  out.weight = kept_vectors(weight, kept, s.params.sub_centers);
  if (s.spec.class_weight.defined()) {  // the kept classes' weights, of every rank
    std::vector<int64_t> counts;
    for (int64_t r = 0; r < ranks; ++r) counts.push_back((r + 1 < ranks ? kept_starts[r + 1] : kept_total) - kept_starts[r]);
    const distributed::RowLayout layout = distributed::row_layout(at::tensor(counts));
    const at::Tensor ids = distributed::all_gather_rows(s.group, (kept + s.classes.offset).to(target.device()), layout);
    out.spec.spec.class_weight = s.spec.class_weight.index_select(0, ids.to(s.spec.class_weight.device()));
  }
  return out;
}

}  // namespace angular::detail
