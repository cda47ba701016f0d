"""One rank of test_sharded_checkpoint.py under torchrun, on OUT/problem.pt (the whole head's W
[C·K, D] and its SGD momentum, batches). MODE:
  save     the head and its optimizer state split over this world by class_range, saved with
           save_head_shards into OUT/saved
  resume   two heads: one loaded with load_head_shards from OUT/saved (of another world size),
           one given this world's split of the state directly; each takes the same SGD steps on
           this rank's rows of the batches; writes both heads' rows and momentum
Both modes also save and load an insightface PartialFC_V2 (its weight only: K = 1) in
OUT/saved_partial_fc, writing the loaded rows."""

import os
import sys

import torch
import torch.distributed as dist

from angular.compat.insightface import CombinedMarginLoss, PartialFC_V2
from angular.distributed import ShardedMarginLoss, load_head_shards, save_head_shards

out, mode = sys.argv[1], sys.argv[2]
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
problem = torch.load(os.path.join(out, "problem.pt"))
C, K = problem["C"], problem["K"]


def head_and_optimizer():
    head = ShardedMarginLoss(C, problem["weight"].shape[1], "subcenter-arcface", {"sub_centers": K, "scale": 8.0})
    return head, torch.optim.SGD(head.parameters(), lr=0.5, momentum=0.9)


def given_state(head, optimizer):
    """This rank's rows of the problem's state, set directly."""
    offset, count = head.classes
    rows = slice(offset * K, (offset + count) * K)
    with torch.no_grad():
        head.weight.copy_(problem["weight"][rows])
    optimizer.state[head.weight] = {"momentum_buffer": problem["momentum"][rows].clone()}


partial_fc = PartialFC_V2(CombinedMarginLoss(64, 1.0, 0.5, 0.0), problem["weight"].shape[1], C)
if mode == "save":
    head, optimizer = head_and_optimizer()
    given_state(head, optimizer)
    save_head_shards(os.path.join(out, "saved"), head, optimizer)
    with torch.no_grad():
        partial_fc.weight.copy_(problem["weight"][partial_fc.class_start:partial_fc.class_start + partial_fc.num_local])
    save_head_shards(os.path.join(out, "saved_partial_fc"), partial_fc)
else:
    load_head_shards(os.path.join(out, "saved_partial_fc"), partial_fc)
    results = {"partial_fc": partial_fc.weight.detach().clone()}
    for name in ("resumed", "direct"):
        head, optimizer = head_and_optimizer()
        if name == "resumed":
            load_head_shards(os.path.join(out, "saved"), head, optimizer)
        else:
            given_state(head, optimizer)
        for x, y in problem["batches"]:
            rows = torch.arange(len(y)).tensor_split(world)[rank]
            optimizer.zero_grad()
            head(x[rows], y[rows]).backward()
            optimizer.step()
        results[name] = (head.weight.detach().clone(), optimizer.state[head.weight]["momentum_buffer"].clone())
    torch.save(results, os.path.join(out, f"rank{rank}.pt"))
dist.destroy_process_group()
