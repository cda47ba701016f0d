"""Data parallel on 2 processes (torchrun, Gloo, CPU), as the README advises it: the sharded head
outside DistributedDataParallel, a replicated head inside it; each equals one process with the
whole batch."""

import os
import sys

import pytest
import torch

import angular
from processes import free_port, run

HERE = os.path.dirname(os.path.abspath(__file__))


def torchrun(out, mode, nproc=2, timeout=240, script="ddp_worker.py"):
    """Runs SCRIPT (this folder's) OUT MODE on `nproc` local ranks under torchrun."""
    run([sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc-per-node={nproc}",
         "--master-addr=127.0.0.1", f"--master-port={free_port()}", os.path.join(HERE, script), out, mode], timeout)


def save_problem(tmp_path, C=9, rows=12):
    torch.manual_seed(7)
    backbone = torch.nn.Linear(8, 6)
    weight = torch.randn(C, 6)
    x, y = torch.randn(rows, 8), torch.randint(0, C, (rows,))
    y[3] = -100
    torch.save({"backbone": backbone.state_dict(), "weight": weight, "x": x, "y": y, "C": C}, tmp_path / "problem.pt")
    return backbone, weight, x, y, C


def check_sharded_step(tmp_path, head, backbone, x, y, buffers=False):
    loss = head(backbone(x), y)
    loss.backward()
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        torch.testing.assert_close(got["loss"], loss.detach(), rtol=1e-6, atol=1e-7)
        for a, b in zip(got["backbone"], [p.grad for p in backbone.parameters()]):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        shard = head.weight.grad[got["offset"]:got["offset"] + got["weight"].shape[0]]
        torch.testing.assert_close(got["weight"], shard, rtol=1e-5, atol=1e-6)
        if buffers:  # the running statistics took the whole batch, alike on every rank
            for name, b in head.named_buffers():
                torch.testing.assert_close(got["buffers"][name], b, rtol=1e-6, atol=1e-6)


def test_ddp_with_the_sharded_loss_equals_one_process(tmp_path):
    backbone, weight, x, y, C = save_problem(tmp_path)
    torchrun(str(tmp_path), "sharded")
    head = angular.ArcFaceLoss(C, 6, scale=16.0, margin=0.3)
    with torch.no_grad():
        head.weight.copy_(weight)
    check_sharded_step(tmp_path, head, backbone, x, y)


def test_the_sharded_adaface_keeps_its_statistics_like_one_process(tmp_path):
    backbone, weight, x, y, C = save_problem(tmp_path)
    torchrun(str(tmp_path), "adaface")
    head = angular.AdaFaceLoss(C, 6, scale=16.0, momentum=0.5).train()
    with torch.no_grad():
        head.weight.copy_(weight)
    check_sharded_step(tmp_path, head, backbone, x, y, buffers=True)


def test_a_replicated_head_inside_ddp_stays_equal_on_every_rank_and_to_one_process(tmp_path):
    """The README's advice for a replicated head: inside DistributedDataParallel with the backbone.
    After three SGD steps W is the same on both ranks and equals one process's on the whole batch."""
    backbone, weight, x, y, C = save_problem(tmp_path)
    y[3] = 2  # every row labelled: both ranks' means are over 6 rows, and their average is the whole mean
    torch.save({"backbone": backbone.state_dict(), "weight": weight, "x": x, "y": y, "C": C}, tmp_path / "problem.pt")
    torchrun(str(tmp_path), "replicated")
    head = angular.ArcFaceLoss(C, 6, scale=16.0, margin=0.3)
    with torch.no_grad():
        head.weight.copy_(weight)
    opt = torch.optim.SGD([*backbone.parameters(), *head.parameters()], lr=0.5, momentum=0.9)
    for _ in range(3):
        opt.zero_grad()
        head(backbone(x), y).backward()
        opt.step()
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    torch.testing.assert_close(ranks[0]["weight"], ranks[1]["weight"], rtol=0, atol=0)
    torch.testing.assert_close(ranks[0]["weight"], head.weight.detach(), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(head.weight.detach(), weight)  # it trained
    for a, b in zip(ranks[0]["backbone"], backbone.parameters()):
        torch.testing.assert_close(a, b.detach(), rtol=1e-5, atol=1e-6)


def test_class_range_splits_like_cpp():
    assert [angular.distributed.class_range(10, r, 3) for r in range(3)] == [(0, 4), (4, 3), (7, 3)]
    with pytest.raises(RuntimeError, match="rank 3"):
        angular.distributed.class_range(10, 3, 3)


def test_the_sharded_module_refuses_an_unknown_margin_and_setting():
    with pytest.raises(ValueError, match="unknown margin 'bogus'"):
        angular.distributed.sharded_margin_loss(torch.randn(2, 3), torch.randn(2, 3), torch.zeros(2, dtype=torch.long),
                                                4, "bogus")
    with pytest.raises(ValueError, match="no setting 'k'"):
        angular.distributed.sharded_margin_loss(torch.randn(2, 3), torch.randn(2, 3), torch.zeros(2, dtype=torch.long),
                                                4, "arcface", {"k": 2.0})
