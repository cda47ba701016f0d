"""The class-sharded loss on 2 processes (torchrun, Gloo, CPU): DistributedDataParallel around
a backbone with ShardedMarginLoss equals one process with the whole batch and ArcFaceLoss."""

import os
import signal
import socket
import subprocess
import sys

import pytest
import torch

import angular

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(out, nproc=2, timeout=240):
    """Runs ddp_worker.py on `nproc` local ranks; kills every process on failure or timeout."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc-per-node={nproc}",
               "--master-addr=127.0.0.1", f"--master-port={free_port()}", os.path.join(HERE, "ddp_worker.py"), out]
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1", PYTHONFAULTHANDLER="1")
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"torchrun did not finish in {timeout} s:\n{output}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, output


def test_ddp_with_the_sharded_loss_equals_one_process(tmp_path):
    torch.manual_seed(7)
    C = 9
    backbone = torch.nn.Linear(8, 6)
    weight = torch.randn(C, 6)
    x, y = torch.randn(12, 8), torch.randint(0, C, (12,))
    y[3] = -100
    torch.save({"backbone": backbone.state_dict(), "weight": weight, "x": x, "y": y, "C": C}, tmp_path / "problem.pt")
    torchrun(str(tmp_path))

    head = angular.ArcFaceLoss(C, 6, scale=16.0, margin=0.3)
    with torch.no_grad():
        head.weight.copy_(weight)
    loss = head(backbone(x), y)
    loss.backward()
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        torch.testing.assert_close(got["loss"], loss.detach(), rtol=1e-6, atol=1e-7)
        for a, b in zip(got["backbone"], [p.grad for p in backbone.parameters()]):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        shard = head.weight.grad[got["offset"]:got["offset"] + got["weight"].shape[0]]
        torch.testing.assert_close(got["weight"], shard, rtol=1e-5, atol=1e-6)


def test_class_range_splits_like_cpp():
    assert [angular.distributed.class_range(10, r, 3) for r in range(3)] == [(0, 4), (4, 3), (7, 3)]
    with pytest.raises(RuntimeError, match="rank 3"):
        angular.distributed.class_range(10, 3, 3)


def test_the_sharded_module_refuses_margins_with_statistics():
    with pytest.raises(ValueError, match="adaface"):
        angular.distributed.ShardedMarginLoss(10, 4, "adaface")
