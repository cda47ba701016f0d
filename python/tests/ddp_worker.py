"""One rank of test_distributed.py under torchrun: DistributedDataParallel around a backbone,
angular.distributed.ShardedMarginLoss as the head, this rank's rows of a batch; writes the
loss and the gradients to OUT/rank{r}.pt."""

import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import angular
from angular.distributed import ShardedMarginLoss, class_range

out = sys.argv[1]
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
problem = torch.load(os.path.join(out, "problem.pt"))
backbone = torch.nn.Linear(8, 6)
backbone.load_state_dict(problem["backbone"])
model = DistributedDataParallel(backbone)
head = ShardedMarginLoss(problem["C"], 6, "arcface", {"scale": 16.0, "margin": 0.3})
offset, count = class_range(problem["C"], rank, world)
with torch.no_grad():
    head.weight.copy_(problem["weight"][offset:offset + count])
# Batches of different sizes per rank: rank 0 takes the first 7 rows.
rows = slice(0, 7) if rank == 0 else slice(7, None)
loss = head(model(problem["x"][rows]), problem["y"][rows])
loss.backward()
torch.save({"loss": loss.detach(), "backbone": [p.grad for p in backbone.parameters()], "weight": head.weight.grad,
            "offset": offset}, os.path.join(out, f"rank{rank}.pt"))
# Every rank done before rank 0, which serves the store, takes the group down. Then out without
# the interpreter's teardown: torch 2.15's Gloo process group sometimes aborts there
# ("terminate called without an active exception"; 2 runs in 30 of a plain-torch DDP script
# on this machine under load, without angular).
dist.barrier()
dist.destroy_process_group()
sys.stdout.flush()
os._exit(0)
