#pragma once
// The retrieval search on the CPU: threads own blocks of 64 queries; per block and chunk of
// references one product into a per-thread buffer that stays in cache, then one scan of it
// that keeps each query's R nearest in a heap. References arrive in index order, so a
// candidate that ties with the heap's last never displaces it: the ranking's tie rule
// (lower index first) costs one comparison.

#include <angular/detail/cpu/parallel.hpp>
#include <angular/detail/retrieval_search.hpp>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include <algorithm>
#include <vector>

namespace angular::detail::cpu {

constexpr int64_t kQueryBlock = 64;
constexpr int64_t kScanGroup = 32;  // similarities tested at once against a query's thresholds

template <typename T>
struct Neighbour {
  T value;
  int64_t index;
};

template <typename T>
bool ranks_before(const Neighbour<T>& a, const Neighbour<T>& b) {
  return a.value > b.value || (a.value == b.value && a.index < b.index);
}

/// Puts `item` in place of the heap's top (the candidate ranked last) and restores the heap.
template <typename T>
void replace_last_ranked(Neighbour<T>* heap, int64_t size, Neighbour<T> item) {
  int64_t i = 0;
  for (int64_t child = 1; child < size; child = 2 * i + 1) {
    if (child + 1 < size && ranks_before(heap[child], heap[child + 1])) ++child;
    if (!ranks_before(item, heap[child])) break;
    heap[i] = heap[child];
    i = child;
  }
  heap[i] = item;
}

/// Whether one of values[0, count) is > threshold; a full group in fixed-length loops that
/// the compiler turns into vector compares.
template <typename T>
bool any_above(const T* values, int64_t count, T threshold) {
  int any = 0;
  if (count == kScanGroup) {
    for (int64_t k = 0; k < kScanGroup; ++k) any |= values[k] > threshold;
  } else {
    for (int64_t k = 0; k < count; ++k) any |= values[k] > threshold;
  }
  return any != 0;
}

/// For each block of kQueryBlock rows of `rows` (threads own blocks, each with its own
/// State): start(state, r0, r1), then visit(state, r0, r1, similarities [r1 − r0, c1 − c0]
/// row-major, c0, c1) for each chunk of `references` in order, then finish(state, r0, r1).
template <typename T, class State, class Start, class Visit, class Finish>
void for_each_similarity_block(const at::Tensor& rows, const at::Tensor& references, int64_t chunk,
                               const Start& start, const Visit& visit, const Finish& finish) {
  const int64_t count = rows.size(0), total = references.size(0);
  const int64_t blocks = (count + kQueryBlock - 1) / kQueryBlock;
  parallel_rows(blocks, 1, [&](int64_t b0, int64_t b1) {
    at::Tensor buffer = at::empty({kQueryBlock * std::min(chunk, total)}, rows.options());
    State state;
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r0 = b * kQueryBlock, r1 = std::min(count, r0 + kQueryBlock);
      start(state, r0, r1);
      const at::Tensor block = rows.slice(0, r0, r1);
      for (int64_t c0 = 0; c0 < total; c0 += chunk) {
        const int64_t c1 = std::min(total, c0 + chunk);
        at::Tensor sims = buffer.slice(0, 0, (r1 - r0) * (c1 - c0)).view({r1 - r0, c1 - c0});
        at::mm_out(sims, block, references.slice(0, c0, c1).t());
        visit(state, r0, r1, sims.data_ptr<T>(), c0, c1);
      }
      finish(state, r0, r1);
    }
  });
}

template <typename T>
void search_cpu(const RetrievalProblem& p, RankedQueries& out) {
  const int64_t* relevant = p.relevant.data_ptr<int64_t>();
  const int64_t* query_labels = p.query_labels.data_ptr<int64_t>();
  const int64_t* reference_labels = p.reference_labels.data_ptr<int64_t>();
  double* best_value = out.best_relevant_value.data_ptr<double>();
  int64_t* best_index = out.best_relevant_index.data_ptr<int64_t>();
  int64_t* first_rank = out.first_relevant_rank.data_ptr<int64_t>();
  const auto self_of = [&](int64_t q) { return p.leave_one_out ? q : int64_t{-1}; };

  // Each block's heaps, R candidates per query, in one buffer per block.
  struct BlockHeaps {
    at::Tensor storage;
    std::vector<int64_t> offset, size;
    std::vector<Neighbour<T>> best;
  };
  const auto offsets = [&](int64_t r0, int64_t r1, BlockHeaps& h) {
    h.offset.assign(1, 0);
    for (int64_t q = r0; q < r1; ++q) h.offset.push_back(h.offset.back() + relevant[q]);
    h.size.assign(static_cast<size_t>(r1 - r0), 0);
    h.best.assign(static_cast<size_t>(r1 - r0), {-std::numeric_limits<T>::infinity(), -1});
    const int64_t bytes = h.offset.back() * static_cast<int64_t>(sizeof(Neighbour<T>));
    if (h.storage.numel() < bytes) h.storage = at::empty({bytes}, at::kByte);  // counted by the allocator
  };
  const auto heap_of = [](BlockHeaps& h, int64_t i) {
    return reinterpret_cast<Neighbour<T>*>(h.storage.template data_ptr<uint8_t>()) + h.offset[i];
  };
  for_each_similarity_block<T, BlockHeaps>(
      p.query, p.reference, p.chunk, [&](BlockHeaps& heaps, int64_t r0, int64_t r1) { offsets(r0, r1, heaps); },
      [&](BlockHeaps& heaps, int64_t r0, int64_t r1, const T* sims, int64_t c0, int64_t c1) {
        for (int64_t q = r0; q < r1; ++q) {
          const int64_t i = q - r0, capacity = relevant[q], label = query_labels[q], self = self_of(q);
          if (capacity == 0) continue;
          Neighbour<T>* heap = heap_of(heaps, i);
          int64_t& size = heaps.size[i];
          Neighbour<T>& best = heaps.best[i];
          const T* row = sims + i * (c1 - c0);
          for (int64_t group = c0; group < c1; group += kScanGroup) {
            const int64_t end = std::min(c1, group + kScanGroup);
            // Most similarities change nothing: below both the heap's last and the best
            // relevant one. One vectorised test skips a group of them.
            if (size == capacity) {
              const T threshold = std::min(heap[0].value, best.value);
              if (!any_above(row + (group - c0), end - group, threshold)) continue;
            }
            for (int64_t c = group; c < end; ++c) {
              const T value = row[c - c0];
              if (c == self) continue;
              if (value > best.value && reference_labels[c] == label) best = {value, c};
              if (size < capacity) {
                heap[size++] = {value, c};
                std::push_heap(heap, heap + size, ranks_before<T>);
              } else if (value > heap[0].value) {
                replace_last_ranked(heap, capacity, Neighbour<T>{value, c});
              }
            }
          }
        }
      },
      [&](BlockHeaps& heaps, int64_t r0, int64_t r1) {
        std::vector<int64_t> labels;
        for (int64_t q = r0; q < r1; ++q) {
          const int64_t i = q - r0;
          if (relevant[q] == 0) continue;
          Neighbour<T>* heap = heap_of(heaps, i);
          std::sort_heap(heap, heap + relevant[q], ranks_before<T>);
          labels.resize(static_cast<size_t>(relevant[q]));
          for (int64_t k = 0; k < relevant[q]; ++k) labels[k] = reference_labels[heap[k].index];
          score_nearest(labels.data(), relevant[q], query_labels[q], out, q);
          best_value[q] = static_cast<double>(heaps.best[i].value);
          best_index[q] = heaps.best[i].index;
        }
      });

  // Second pass: the references ranked before each unranked query's best relevant one.
  const at::Tensor unranked = out.unranked(p.relevant);
  const int64_t* which = unranked.data_ptr<int64_t>();
  std::vector<int64_t> before(static_cast<size_t>(unranked.numel()), 0);
  struct Nothing {};
  for_each_similarity_block<T, Nothing>(
      p.query.index_select(0, unranked), p.reference, p.chunk, [](Nothing&, int64_t, int64_t) {},
      [&](Nothing&, int64_t r0, int64_t r1, const T* sims, int64_t c0, int64_t c1) {
        for (int64_t u = r0; u < r1; ++u) {
          const int64_t q = which[u], self = self_of(q), index = best_index[q];
          const T value = static_cast<T>(best_value[q]);
          const T* row = sims + (u - r0) * (c1 - c0);
          int64_t count = 0;
          for (int64_t c = c0; c < c1; ++c) {
            const T v = row[c - c0];
            count += c != self && c != index && (v > value || (v == value && c < index));
          }
          before[u] += count;
        }
      },
      [](Nothing&, int64_t, int64_t) {});
  for (size_t u = 0; u < before.size(); ++u) first_rank[which[u]] = before[u] + 1;
}

inline RankedQueries search(const RetrievalProblem& p) {
  RankedQueries out(p.query.size(0));
  AT_DISPATCH_FLOATING_TYPES(p.query.scalar_type(), "angular_retrieval_search", [&] { search_cpu<scalar_t>(p, out); });
  return out;
}

}  // namespace angular::detail::cpu
