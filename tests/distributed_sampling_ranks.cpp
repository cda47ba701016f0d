// What a rank of the class-sampling tests runs (tests/distributed_test.cpp starts the ranks):
// the sharded loss with sample_rate < 1 against the single-process loss over the kept classes
// alone, which every rank rebuilds from the ranks' records of what they kept and checks
// against the zero pattern of ∂W. A worker returns 0 when its checks pass.

#include "support/distributed_workers.hpp"
#include "support/sharded_problem.hpp"

#include <angular/distributed.hpp>
#include <angular/loss.hpp>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <iostream>

namespace {

namespace F = angular::functional;
namespace dist = angular::distributed;
using namespace angular::test::sharded;

constexpr int64_t kSampledClasses = 40;

/// Every rank's kept classes, in rank order.
at::Tensor all_kept(const dist::ProcessGroupPtr& group, const at::Tensor& record) {
  const at::Tensor counts = dist::all_gather_values(group, {record.numel()}, record.device());
  return dist::all_gather_rows(group, record, dist::row_layout(counts.select(1, 0).contiguous()));
}

/// One sampled sharded step and its checks: rank r holds `rows[r]` rows of x.
struct Step {
  at::Tensor loss, grad_x, grad_w, record;
};

Step sharded_step(const dist::ProcessGroupPtr& group, const dist::Margin& margin, const at::Tensor& x,
                  const at::Tensor& w, const at::Tensor& y, const std::vector<int64_t>& rows, double rate,
                  uint64_t seed, int64_t chunk) {
  const int64_t rank = group->getRank(), K = sub_centers_of(margin);
  const dist::ClassRange classes = dist::class_range(kSampledClasses, rank, group->getSize());
  int64_t offset = 0;
  for (int64_t r = 0; r < rank; ++r) offset += rows[r];
  Step s;
  s.record = at::empty({0}, at::kLong);
  const at::Tensor x_local = x.narrow(0, offset, rows[rank]).clone().requires_grad_();
  const at::Tensor w_shard = w.narrow(0, classes.offset * K, classes.count * K).clone().requires_grad_();
  s.loss = dist::functional::sharded_margin_loss(x_local, w_shard, y.narrow(0, offset, rows[rank]), group,
                                                 kSampledClasses, margin,
                                                 dist::functional::ShardedLossFuncOptions()
                                                     .chunk_classes(chunk)
                                                     .sample_rate(rate)
                                                     .generator(at::make_generator<at::CPUGeneratorImpl>(seed))
                                                     .sampled_classes(s.record)
                                                     .norm_mean(torch::full({1}, 5.0))
                                                     .norm_std(torch::full({1}, 2.0))
                                                     .t(torch::full({1}, 0.3)));
  s.loss.backward(torch::ones_like(s.loss));
  s.grad_x = x_local.grad();
  s.grad_w = w_shard.grad();
  return s;
}

/// The margin's options over C' = `kept`.numel() classes: its own, with the class weights of
/// the kept classes.
dist::Margin over_kept(dist::Margin margin, const at::Tensor& kept) {
  std::visit(
      [&](auto& o) {
        if (o.weight().defined()) o.weight(o.weight().index_select(0, kept));
      },
      margin);
  return margin;
}

int sampled_equals_kept_classes(const dist::ProcessGroupPtr& group) {
  const int64_t rank = group->getRank(), ranks = group->getSize();
  const dist::ClassRange classes = dist::class_range(kSampledClasses, rank, ranks);
  int failures = 0;
  const auto fail = [&](const std::string& what) {
    ++failures;
    std::cerr << "rank " << rank << " of " << ranks << ": " << what << "\n";
  };
  auto margins_list = margins();
  // Arc's default k follows C: the kept problem must use the k of all C classes.
  for (auto& [name, m] : margins_list)
    if (auto* arc = std::get_if<F::ArcLossFuncOptions>(&m)) arc->k(3.0);
  for (const auto& [name, base] : margins_list) {
    for (int variant = 0; variant < 4; ++variant) {
      for (int step = 0; step < 2; ++step) {  // batches of other sizes per step and per rank
        torch::manual_seed(100 + step);
        std::vector<int64_t> rows;
        int64_t total = 0;
        for (int64_t r = 0; r < ranks; ++r) rows.push_back(step == 0 ? 2 + r : 5 - r), total += rows.back();
        const int64_t K = sub_centers_of(base);
        const at::Tensor x = torch::randn({total, kDim}, torch::kDouble).mul(3);
        const at::Tensor w = torch::randn({kSampledClasses * K, kDim}, torch::kDouble);
        at::Tensor y = torch::randint(0, kSampledClasses, {total}, torch::kLong);
        y[1] = -100;
        const dist::Margin margin = with_settings(base, variant, torch::rand({kSampledClasses}).add(0.5));
        const double rate = step == 0 ? 0.3 : 0.6;
        const std::string what = name + ", settings " + std::to_string(variant) + ", step " + std::to_string(step);
        const Step s = sharded_step(group, margin, x, w, y, rows, rate, 1234 + step, step == 0 ? 0 : 2);

        // The record: the positives first, then the drawn negatives, each ascending, and as many
        // as max(positives, ceil(rate·C_r)).
        const at::Tensor labels = y.masked_select((y >= classes.offset) & (y < classes.offset + classes.count));
        const at::Tensor positives = std::get<0>(at::_unique(labels, true));
        const int64_t expected_count =
            std::max<int64_t>(positives.numel(), static_cast<int64_t>(std::ceil(rate * classes.count)));
        if (s.record.numel() != expected_count) fail(what + ": kept " + std::to_string(s.record.numel()));
        if (!s.record.narrow(0, 0, positives.numel()).equal(positives)) fail(what + ": positives not kept first");
        if (!std::get<0>(at::_unique(s.record, true)).equal(std::get<0>(s.record.sort())) ||
            (s.record.numel() > 0 && (s.record.min().item<int64_t>() < classes.offset ||
                                      s.record.max().item<int64_t>() >= classes.offset + classes.count)))
          fail(what + ": kept classes repeat or lie outside the shard");

        // ∂W is non-zero on the kept classes' vectors and zero elsewhere.
        const at::Tensor class_grad = s.grad_w.view({classes.count, -1}).abs().sum(1) != 0;
        const at::Tensor nonzero = class_grad.nonzero().select(1, 0) + classes.offset;
        if (!nonzero.equal(std::get<0>(s.record.sort()))) fail(what + ": dW's non-zero rows are not the kept classes");

        // The single-process loss over the kept classes of every rank, labels moved to them.
        const at::Tensor kept = all_kept(group, s.record);
        at::Tensor place = at::full({kSampledClasses}, -1, torch::kLong);
        place.index_copy_(0, kept, at::arange(kept.numel()));
        at::Tensor kept_y = at::where(y >= 0, place.index_select(0, y.clamp_min(0)), y);
        Problem p;
        p.y = kept_y;
        const at::Tensor vectors =
            K == 1 ? kept : (kept.unsqueeze(1) * K + at::arange(K).unsqueeze(0)).flatten();
        const at::Tensor x_all = x.clone().requires_grad_(), w_kept = w.index_select(0, vectors).requires_grad_();
        const at::Tensor expected = single_process_loss(over_kept(margin, kept), p, x_all, w_kept,
                                                        dist::functional::ShardedLossFuncOptions()
                                                            .norm_mean(torch::full({1}, 5.0))
                                                            .norm_std(torch::full({1}, 2.0))
                                                            .t(torch::full({1}, 0.3)));
        expected.backward(torch::ones_like(expected));
        at::Tensor expected_grad_w = at::zeros_like(w);
        expected_grad_w.index_copy_(0, vectors, w_kept.grad());
        int64_t offset = 0;
        for (int64_t r = 0; r < rank; ++r) offset += rows[r];
        const at::Tensor expected_loss = variant == 2 ? expected.narrow(0, offset, rows[rank]) : expected;
        if (!close(s.loss, expected_loss, 1e-10) || !close(s.grad_x, x_all.grad().narrow(0, offset, rows[rank]), 1e-10) ||
            !close(s.grad_w, expected_grad_w.narrow(0, classes.offset * K, classes.count * K), 1e-10))
          fail(what + ": loss or gradients differ from the loss over the kept classes");

        // The same seed draws the same classes: a second run is bitwise the first.
        const Step again = sharded_step(group, margin, x, w, y, rows, rate, 1234 + step, step == 0 ? 0 : 2);
        if (!again.loss.equal(s.loss) || !again.grad_x.equal(s.grad_x) || !again.grad_w.equal(s.grad_w) ||
            !again.record.equal(s.record))
          fail(what + ": two runs with one seed differ");
      }
    }
  }
  return failures == 0 ? 0 : 1;
}

/// sample_rate 1 draws nothing and is bitwise the loss without sampling options.
int unsampled_is_exact(const dist::ProcessGroupPtr& group) {
  const int64_t rank = group->getRank(), ranks = group->getSize();
  const Problem p = make_problem(ranks, 1, at::kFloat);
  int64_t offset = 0;
  for (int64_t r = 0; r < rank; ++r) offset += p.rows[r];
  const dist::ClassRange classes = dist::class_range(kClasses, rank, ranks);
  const auto run = [&](const dist::functional::ShardedLossFuncOptions& options) {
    const at::Tensor x = p.x.narrow(0, offset, p.rows[rank]).clone().requires_grad_();
    const at::Tensor w = p.w.narrow(0, classes.offset, classes.count).clone().requires_grad_();
    const at::Tensor loss = dist::functional::sharded_margin_loss(x, w, p.y.narrow(0, offset, p.rows[rank]), group,
                                                                  kClasses, F::ArcFaceLossFuncOptions().scale(8), options);
    loss.backward();
    return std::vector<at::Tensor>{loss, x.grad(), w.grad()};
  };
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(5);
  const at::Tensor state = generator.get_state();
  at::Tensor record = at::empty({0}, at::kLong);
  const auto plain = run({});
  const auto with_rate_one = run(dist::functional::ShardedLossFuncOptions().sample_rate(1.0).generator(generator).sampled_classes(record));
  bool ok = generator.get_state().equal(state) && record.numel() == 0;
  for (size_t i = 0; i < plain.size(); ++i) ok = ok && plain[i].equal(with_rate_one[i]);
  if (!ok) std::cerr << "rank " << rank << ": sample_rate 1 is not the exact loss, or it drew\n";
  return ok ? 0 : 1;
}

}  // namespace

namespace angular::test {

int sampled_equals_kept_classes_worker(const ProcessGroupPtr& group) { return sampled_equals_kept_classes(group); }
int unsampled_is_exact_worker(const ProcessGroupPtr& group) { return unsampled_is_exact(group); }

}  // namespace angular::test
