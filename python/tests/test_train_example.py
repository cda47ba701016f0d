"""examples/python/train.py on the real Fashion-MNIST (Debian's dataset-fashion-mnist): a short run
learns and writes angular-train's run folder, which scripts/plot.py draws; under torchrun, 2
processes take the steps of one process with the global batch, with either head."""

import csv
import importlib.util
import json
import math
import os
import re
import sys

import pytest
import torch

from processes import free_port, run

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TRAIN = os.path.join(ROOT, "examples", "python", "train.py")

# Small and one thread per process: a few seconds per run on 2 busy cores.
SMALL = ["--train-subset", "512", "--test-subset", "256", "--threads", "1"]


def train(out, *args):
    return run([sys.executable, TRAIN, *SMALL, "--out", str(out), *args], 180)


def torchrun(out, *args):
    return run([sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2",
                "--master-addr=127.0.0.1", f"--master-port={free_port()}", TRAIN, *SMALL, "--out", str(out), *args],
               180)


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def train_module():
    spec = importlib.util.spec_from_file_location("train_example", TRAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cpp_metrics_columns():
    """metrics.csv's columns as angular-train writes them (examples/train/run_formats.hpp)."""
    with open(os.path.join(ROOT, "examples", "train", "run_formats.hpp")) as f:
        return re.search(r'kMetricsHeader =\s*"([^"]+)"', f.read()).group(1).split(",")


def test_a_short_run_learns_and_writes_the_folder_that_plot_py_draws(tmp_path):
    out = tmp_path / "run"
    train(out, "--loss", "arcface", "--epochs", "4", "--batch-size", "64")
    metrics = rows(out / "metrics.csv")
    assert list(metrics[0]) == cpp_metrics_columns() + ["images_per_second"]
    assert [int(r["epoch"]) for r in metrics] == [1, 2, 3, 4]
    assert all(math.isfinite(float(v)) for r in metrics for v in r.values())
    assert all(float(r["images_per_second"]) > 0 for r in metrics)
    steps = rows(out / "steps.csv")
    assert len(steps) == 4 * 512 // 64 and all(math.isfinite(float(r["loss"])) for r in steps)
    # It learns: the last epoch's loss well below the first steps', the angles to the class
    # vectors closing, the retrieval better.
    first = sum(float(r["loss"]) for r in steps[:3]) / 3
    last = [float(r["loss"]) for r in steps if r["epoch"] == "4"]
    assert sum(last) / len(last) < 0.75 * first, (first, last)
    assert float(metrics[-1]["train_acc"]) > float(metrics[0]["train_acc"]) + 0.25
    assert float(metrics[-1]["wc_intra"]) < float(metrics[0]["wc_intra"]) - 0.1
    assert float(metrics[-1]["map_at_r"]) > float(metrics[0]["map_at_r"])
    # Each epoch's histograms count every test image once, in its class's rows.
    histograms = rows(out / "histograms.csv")
    assert len(histograms) == 4 * 10 * 36
    features = rows(out / "test_features.csv")
    assert len(features) == 256 and list(features[0]) == ["label", *(f"f{d}" for d in range(64))]
    for epoch in "1234":
        for c in range(10):
            count = sum(int(r["count"]) for r in histograms if r["epoch"] == epoch and r["class"] == str(c))
            assert count == sum(r["label"] == str(c) for r in features)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs_done"] == 4 and summary["test_accuracy"] == pytest.approx(float(metrics[-1]["test_acc"]))
    assert summary["options"]["loss_module"].startswith("ArcFaceLoss(num_classes=10, embedding_dim=64, scale=16.0")
    for picture in ("features.png", "histograms.png", "similarity.png", "curves.png"):
        assert (out / picture).stat().st_size > 1000, picture


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """Two steps of one process with a global batch of 64, at a large learning rate (the second
    step's loss then shows a wrong gradient plainly)."""
    out = tmp_path_factory.mktemp("one")
    train(out, "--loss", "arcface", "--epochs", "1", "--max-steps", "2", "--lr", "1", "--batch-size", "64",
          "--no-plots")
    return rows(out / "steps.csv")


@pytest.mark.parametrize("head", ["sharded", "replicated"])
def test_two_processes_take_the_steps_of_one_with_the_global_batch(tmp_path, one_process, head):
    """BatchNorm over both ranks' rows, each rank's share of every batch, and the head's gradients
    summed (sharded: each rank's classes; replicated: averaged by DDP) make each step that of one
    process: the first step's loss checks the forward pass, the second's the first update."""
    out = tmp_path / "two"
    torchrun(out, "--loss", "arcface", "--epochs", "1", "--max-steps", "2", "--lr", "1", "--batch-size", "32",
             "--head", head, "--no-plots")
    steps = rows(out / "steps.csv")
    assert len(steps) == 2
    for two, one in zip(steps, one_process):
        assert float(two["loss"]) == pytest.approx(float(one["loss"]), rel=1e-4)
        assert two["accuracy"] == one["accuracy"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["options"]["processes"] == 2 and summary["options"]["head"] == head
    assert len(rows(out / "metrics.csv")) == 1 and len(rows(out / "test_features.csv")) == 256


@pytest.mark.parametrize("argv, argument", [
    (["--loss", "bogus"], "--loss"),
    (["--loss", "arcface", "--set", "nosuch=1"], "--set"),
    (["--loss", "arcface", "--set", "margin=-1"], "--set"),
    (["--loss", "arcface", "--set", "margin=wide"], "--set"),
    (["--loss", "center", "--head", "sharded"], "--head"),
    (["--loss", "arcface", "--model", "vgg"], "--model"),
    (["--loss", "arcface", "--epochs", "0"], "--epochs"),
])
def test_a_bad_argument_is_named(argv, argument, capsys):
    with pytest.raises(SystemExit) as exit:
        train_module().parse_args([*argv, "--out", "unused"])
    assert exit.value.code == 2
    assert f"argument {argument}" in capsys.readouterr().err


def test_settings_are_angular_trains_defaults_then_the_command_lines():
    module = train_module()
    args = module.parse_args(["--loss", "subcenter_arcface", "--set", "scale=30", "--set", "sub_centers=2",
                              "--out", "unused"])
    assert args.loss == "subcenter-arcface"
    assert args.settings == {"scale": 30.0, "margin": 0.2, "sub_centers": 2}
    assert module.parse_args(["--loss", "arc", "--set", "k=none", "--out", "unused"]).settings == {"k": None}
    assert module.parse_args(["--loss", "sphereface", "--set", "lambda=2", "--out", "unused"]).settings == {
        "lambda_": 2.0}


def test_a_torchvision_model_takes_one_channel_and_ends_in_the_embedding():
    module = train_module()
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(SystemExit, match="needs torchvision"):
            module.torchvision_model("resnet18", 32)
        return
    model, dim = module.torchvision_model("resnet18", 32)
    assert dim == 32 and model(torch.zeros(2, 1, 28, 28)).shape == (2, 32)
    model, dim = module.torchvision_model("resnet18", 0)
    assert dim == 512 and model(torch.zeros(2, 1, 28, 28)).shape == (2, 512)


def test_without_tqdm_progress_is_a_line_at_the_end_of_the_epoch_and_silent_off_rank_0(capsys):
    module = train_module()
    module.tqdm = None
    for show in (True, False):
        progress = module.Progress(show, "epoch 1/2", 3)
        for step in (1, 2, 3):
            progress.update(step, 2.5, 0.25, 1000.0)
    assert capsys.readouterr().err == "epoch 1/2 step 3/3: loss 2.5000 acc 0.250 1000 images/s\n"
