"""One rank of test_distributed.py under torchrun, as the README's DDP advice has it; writes what it
got to OUT/rank{r}.pt. MODE:
  sharded     DistributedDataParallel around a backbone, angular.distributed.ShardedMarginLoss as
              the head (outside DDP), this rank's rows of a batch (7 on rank 0, the rest on 1):
              the loss and the gradients
  adaface     the same with the sharded AdaFace head in training mode: also its statistics
  replicated  a backbone and a replicated ArcFaceLoss inside one DistributedDataParallel, three
              SGD steps on this rank's half of the batch: the class vectors after them"""

import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import angular
from angular.distributed import ShardedMarginLoss, class_range

out, mode = sys.argv[1], sys.argv[2]
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
problem = torch.load(os.path.join(out, "problem.pt"))
backbone = torch.nn.Linear(8, 6)
backbone.load_state_dict(problem["backbone"])


class Model(torch.nn.Module):
    """The backbone and its loss head, as one module for DistributedDataParallel."""

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x, y):
        return self.head(self.backbone(x), y)


if mode == "replicated":
    head = angular.ArcFaceLoss(problem["C"], 6, scale=16.0, margin=0.3)
    with torch.no_grad():
        head.weight.copy_(problem["weight"])
    model = DistributedDataParallel(Model(backbone, head))
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    half = problem["x"].shape[0] // world
    rows = slice(rank * half, (rank + 1) * half)
    for _ in range(3):
        opt.zero_grad()
        model(problem["x"][rows], problem["y"][rows]).backward()
        opt.step()
    result = {"weight": head.weight.detach().clone(), "backbone": [p.detach().clone() for p in backbone.parameters()]}
else:
    model = DistributedDataParallel(backbone)
    if mode == "adaface":
        head = ShardedMarginLoss(problem["C"], 6, "adaface", {"scale": 16.0}, momentum=0.5).train()
    else:
        head = ShardedMarginLoss(problem["C"], 6, "arcface", {"scale": 16.0, "margin": 0.3})
    offset, count = class_range(problem["C"], rank, world)
    with torch.no_grad():
        head.weight.copy_(problem["weight"][offset:offset + count])
    rows = slice(0, 7) if rank == 0 else slice(7, None)  # batches of different sizes per rank
    loss = head(model(problem["x"][rows]), problem["y"][rows])
    loss.backward()
    result = {"loss": loss.detach(), "backbone": [p.grad for p in backbone.parameters()], "weight": head.weight.grad,
              "offset": offset, "buffers": {n: b.clone() for n, b in head.named_buffers()}}
torch.save(result, os.path.join(out, f"rank{rank}.pt"))
# Every rank done before rank 0, which serves the store, takes the group down. Then out without
# the interpreter's teardown: torch 2.15's Gloo process group sometimes aborts there
# ("terminate called without an active exception"; 2 runs in 30 of a plain-torch DDP script
# on this machine under load, without angular).
dist.barrier()
dist.destroy_process_group()
sys.stdout.flush()
os._exit(0)
