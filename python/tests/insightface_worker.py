"""One rank of test_compat_insightface.py under torchrun: PartialFC_V2 (angular.compat.insightface)
as an arcface_torch training script calls it, on this rank's rows of OUT/problem.pt (a different
count on each rank), for each margin and sample rate of the problem; writes the loss, the local
embeddings' gradient, this rank's weight gradient and its kept classes to OUT/rank{r}.pt."""

import os
import sys

import torch
import torch.distributed as dist

from angular.compat.insightface import CombinedMarginLoss, PartialFC_V2

out = sys.argv[1]
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
problem = torch.load(os.path.join(out, "problem.pt"))
begin = sum(problem["rows"][:rank])
rows = slice(begin, begin + problem["rows"][rank])
results = []
for margin, rate in problem["cases"]:
    torch.manual_seed(100 + rank)  # each rank draws its own negatives
    head = PartialFC_V2(CombinedMarginLoss(*margin), problem["x"].shape[1], problem["C"], sample_rate=rate)
    with torch.no_grad():
        head.weight.copy_(problem["weight"][head.class_start:head.class_start + head.num_local])
    x = problem["x"][rows].float().requires_grad_()
    loss = head(x, problem["y"][rows].unsqueeze(1))  # arcface_torch's labels may be [b, 1]
    loss.backward()
    results.append({"loss": loss.detach(), "x_grad": x.grad, "weight_grad": head.weight.grad,
                    "kept": head.sampled_classes.clone() if rate < 1 else None,
                    "classes": (head.class_start, head.num_local)})
torch.save(results, os.path.join(out, f"rank{rank}.pt"))
dist.destroy_process_group()
