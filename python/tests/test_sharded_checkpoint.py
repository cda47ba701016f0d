"""A sharded head's checkpoint resumes on another number of ranks (2 → 3, 3 → 2; torchrun, Gloo):
the run resumed from it takes the same steps as one given that state directly; export_head writes
the whole head as one file that the single-process module loads, holding one shard at a time."""

import gc
import weakref

import pytest
import torch

import angular
from angular import sharded_checkpoint
from test_distributed import torchrun

C, K, D = 11, 2, 6


def save_problem(tmp_path):
    torch.manual_seed(5)
    batches = [(torch.randn(9, D), torch.randint(0, C, (9,))) for _ in range(2)]
    torch.save({"C": C, "K": K, "weight": torch.randn(C * K, D), "momentum": torch.randn(C * K, D) * 0.1,
                "batches": batches}, tmp_path / "problem.pt")


@pytest.mark.parametrize("saved,resumed", [(2, 3), (3, 2)], ids=["2 to 3 ranks", "3 to 2 ranks"])
def test_a_checkpoint_resumes_on_another_world_size(tmp_path, saved, resumed):
    save_problem(tmp_path)
    torchrun(str(tmp_path), "save", nproc=saved, script="reshard_worker.py")
    torchrun(str(tmp_path), "resume", nproc=resumed, script="reshard_worker.py")
    moved = False
    for rank in range(resumed):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        for a, b in zip(got["resumed"], got["direct"]):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
        offset, count = angular.distributed.class_range(C, rank, resumed)
        weight = torch.load(tmp_path / "problem.pt")["weight"]
        moved |= not torch.allclose(got["direct"][0], weight[offset * K:(offset + count) * K])
        assert torch.equal(got["partial_fc"], weight[offset:offset + count])  # PartialFC_V2's rows, K = 1
    assert moved  # the steps changed the head


def test_export_writes_the_whole_head_one_shard_at_a_time(tmp_path, monkeypatch):
    save_problem(tmp_path)
    torchrun(str(tmp_path), "save", nproc=3, script="reshard_worker.py")
    problem = torch.load(tmp_path / "problem.pt")
    loaded = []
    real_load = torch.load

    def load(*args, **kwargs):  # every shard read once the one before it is gone
        value = real_load(*args, **kwargs)
        if "weight" in value:
            gc.collect()
            assert all(ref() is None for ref in loaded), "two shards held at once"
            loaded.append(weakref.ref(value["weight"]))
        return value

    monkeypatch.setattr(sharded_checkpoint.torch, "load", load)
    sharded_checkpoint.export_head(str(tmp_path / "saved"), str(tmp_path / "head.pt"))
    assert len(loaded) == 3
    head = angular.SubCenterArcFaceLoss(C, D, K, scale=8.0)
    head.load_state_dict(real_load(tmp_path / "head.pt"))
    torch.testing.assert_close(head.weight.detach(), problem["weight"], rtol=0, atol=0)
