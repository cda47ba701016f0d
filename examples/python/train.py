#!/usr/bin/env python3
"""Train a ResNet20 on Fashion-MNIST with one of angular's losses and write a run folder that
scripts/plot.py draws: the files of angular-train's (docs/trainers.md), from Python.

    python examples/python/train.py --loss arcface --out runs/py-arcface
    python examples/python/train.py --loss adaface --set scale=30 --set margin=0.3 --epochs 10 --out DIR
    python examples/python/train.py --loss arc --train-subset 2048 --test-subset 1000 --epochs 2 --out DIR
    torchrun --nproc-per-node 2 examples/python/train.py --loss arcface --head sharded --out DIR

Data: the gzip IDX files of Debian's dataset-fashion-mnist (--data for another folder), normalised
by the training images' mean and standard deviation; --train-subset/--test-subset keep the first N.
Model: angular-train's ResNet20 (3x3 stem, 3 stages of 3 basic blocks of 16/32/64 channels, global
average pool) whose features are the 64 pooled ones, or with --embedding-dim D a linear layer's.
--model torchvision:NAME takes a torchvision model (weights=None) instead: its first convolution
made 1-channel, its last linear layer replaced by the embedding layer (dropped with D = 0); it
must take 28x28 images (resnet18 and mobilenet_v2 do).
Loss: a margin of angular's table, soft (the modified softmax) or center (CenterLoss: the modified
softmax plus the center term, its centers moved by Wen et al.'s rule). --set NAME=VALUE sets any
argument of the loss module ('none' for an automatic value). Unset, scale is 16 and the angular
margin 0.2 (arcface, subcenter-arcface, curricularface, combined's m2) and SphereFace's lambda 5,
as angular-train has them for 10 classes; the others keep the library's defaults.
Optimizer: SGD (weight decay 5e-4) under OneCycleLR (peak --lr; momentum 0.95 to 0.85), with the
paper's Table 1 as defaults: 60 epochs of 256, lr 0.1 (center 0.01). --max-steps N stops after N
steps in all, the schedule still the whole run's. --compile: torch.compile the backbone with a
replicated head (angular's losses compile; the sharded head runs eagerly).
Data parallel under torchrun: Gloo on the CPU, NCCL with --device cuda; the backbone inside
DistributedDataParallel, its BatchNorm over every rank's rows; --batch-size is per rank and each
rank takes its share of every global batch, so a step is one process's with the global batch.
--head sharded (the default; not for center): each rank's share of the class vectors in
angular.distributed.ShardedMarginLoss, outside DDP. --head replicated: the whole head inside DDP
(its buffers, the centers or AdaFace's and CurricularFace's statistics, follow rank 0's rows).
Each epoch: test accuracy (the head's logits), the paper's angles (angular.metrics) and retrieval of
the test features among themselves (P@1, R-precision, MAP@R; angular.evaluation), and the
training images/s. Rank 0 shows a tqdm bar (a line every 10 s without tqdm) and writes to --out
metrics.csv (angular-train's columns and images_per_second), steps.csv, histograms.csv,
test_features.csv and summary.json, each replaced whole after every epoch, then scripts/plot.py's
pictures (not with --no-plots).
"""

import argparse
import inspect
import math
import os
import sys
import time
from types import SimpleNamespace

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

import angular

# This file's folder holds its modules: on sys.path when it runs as a script, not when it is
# loaded by path (python/tests/test_train_example.py).
if os.path.dirname(os.path.abspath(__file__)) not in sys.path:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fashion_mnist import DEBIAN_FASHION_MNIST, load_split  # noqa: E402
from losses import HEADS, head_settings, make_shard  # noqa: E402
from models import ResNet20, SyncBatchNorm2d, torchvision_model  # noqa: E402
from data_parallel import gather_rows, join_ranks, share  # noqa: E402
from run_folder import HISTOGRAM_BINS, RunFolder  # noqa: E402

try:
    from tqdm import tqdm
except ImportError:  # plain progress lines instead
    tqdm = None


def make_backbone(args, data_parallel):
    if args.model.startswith("torchvision:"):
        model, dim = torchvision_model(args.model.split(":", 1)[1], args.embedding_dim)
    else:
        model = ResNet20(args.embedding_dim)
        dim = model.feature_dim
    for m in model.modules():
        if data_parallel and type(m) is nn.BatchNorm2d:
            m.__class__ = SyncBatchNorm2d  # the same state; the statistics of every rank's rows
    return model, dim


class Trainee(nn.Module):
    """The backbone and a replicated head as one module, for DDP and torch.compile."""

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, images, labels):
        features = self.backbone(images)
        return features, (self.head(features, labels) if self.head is not None else None)


def build_run(args, ranks):
    """The data, model, head, optimizer and schedule of a run, alike on every rank."""
    try:
        train, test = load_split(args.data, "train", args.train_subset), load_split(args.data, "t10k", args.test_subset)
    except (OSError, ValueError) as e:
        raise SystemExit(f"train.py: error: --data {args.data}: {e}") from None
    torch.manual_seed(args.seed)
    backbone, dim = make_backbone(args, ranks.world > 1)
    head = HEADS[args.loss](int(max(train[1].max(), test[1].max())) + 1, dim, **args.settings)
    shard = make_shard(args.loss, args.settings, head.num_classes, dim, head) if args.head == "sharded" else None
    trainee = Trainee(backbone, None if shard else head).to(ranks.device)
    head.to(ranks.device)
    if shard is not None:
        shard.to(ranks.device)
    net = trainee if ranks.world == 1 else nn.parallel.DistributedDataParallel(
        trainee, device_ids=None if ranks.device.index is None else [ranks.device.index])
    optimizer = torch.optim.SGD([*trainee.parameters(), *(shard.parameters() if shard else ())], lr=args.lr,
                                momentum=0.9, weight_decay=5e-4)
    global_batch = args.batch_size * ranks.world
    # A last batch with fewer rows than ranks is dropped: each rank takes at least one row.
    steps = len(train[0]) // global_batch + (len(train[0]) % global_batch >= ranks.world)
    return SimpleNamespace(
        args=args, ranks=ranks, train=tuple(t.to(ranks.device) for t in train), test=test, backbone=backbone,
        head=head, shard=shard, net=torch.compile(net) if args.compile else net, optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=args.epochs * steps),
        steps_per_epoch=steps, mean=train[0].mean().to(ranks.device),
        std=train[0].std().clamp_min(1e-6).to(ranks.device))


@torch.no_grad()
def gather_head(run):
    """The sharded head's class vectors, whole, into run.head: for the epoch's angle metrics."""
    run.head.weight.copy_(gather_rows(run.shard.weight, run.ranks))


@torch.no_grad()
def shard_predictions(shard, features, ranks):
    """The class of each row of `features` (the same on every rank) among every rank's classes,
    no rank holding them all: each rank's best of its own, then the best over the ranks (the
    lowest class among equal ones). Every margin's prediction logits grow with the cosine (the
    modified softmax's with the product), so the best cosine is the best logit."""
    offset, count = shard.classes
    weight = shard.weight.detach()
    scores = features @ weight.t() if not shard._margin.normalized else F.normalize(features) @ F.normalize(weight).t()
    best, index = scores.view(len(features), count, -1).amax(2).max(1)
    values, classes = [torch.empty_like(best) for _ in range(ranks.world)], [
        torch.empty_like(index) for _ in range(ranks.world)]
    dist.all_gather(values, best)
    dist.all_gather(classes, index + offset)
    winner = torch.stack(values).argmax(0, keepdim=True)  # the first of equal ones: the lowest rank
    return torch.stack(classes).gather(0, winner).squeeze(0)


@torch.no_grad()
def batch_totals(run, features, labels, loss, rows):
    """The global batch's mean loss and accuracy, the same on every rank."""
    if run.shard is not None:  # the sharded loss is the global batch's already
        labels = gather_rows(labels, run.ranks)
        predicted = shard_predictions(run.shard, gather_rows(features, run.ranks), run.ranks)
        return [loss.item(), predicted.eq(labels).sum().item() / rows]
    correct = run.head.logits(features).argmax(1).eq(labels).sum()
    # A replicated head's loss is this rank's rows' mean.
    totals = torch.stack([loss.double() * len(labels), correct.double()])
    if run.ranks.world > 1:
        dist.all_reduce(totals)
    return [t / rows for t in totals.tolist()]


class Progress:
    """A tqdm bar for the epoch, or without tqdm a line every 10 s; silent off rank 0."""

    def __init__(self, show, title, steps):
        self.show, self.title, self.steps, self.last = show, title, steps, time.perf_counter()
        self.bar = tqdm(total=steps, desc=title, unit="step") if show and tqdm else None

    def update(self, step, loss, accuracy, rate):
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", acc=f"{accuracy:.3f}", img_s=f"{rate:.0f}", refresh=False)
            self.bar.update(1)
            if step == self.steps:
                self.bar.close()
        elif self.show and (step == self.steps or time.perf_counter() - self.last >= 10):
            self.last = time.perf_counter()
            print(f"{self.title} step {step}/{self.steps}: loss {loss:.4f} acc {accuracy:.3f} {rate:.0f} images/s",
                  file=sys.stderr, flush=True)


def train_epoch(run, epoch, steps):
    """`steps` optimizer steps of `epoch`: its metrics.csv row so far, its steps.csv rows, seconds."""
    args, ranks, (images, labels) = run.args, run.ranks, run.train
    global_batch = args.batch_size * ranks.world
    # Every rank shuffles alike and takes its share of each global batch.
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(args.seed * 1000003 + epoch))
    progress, order = Progress(ranks.rank == 0, f"epoch {epoch}/{args.epochs}", steps), order.to(ranks.device)
    records, seen, loss_sum, correct, start = [], 0, 0.0, 0.0, time.perf_counter()
    run.net.train()
    for b in range(steps):
        batch = order[b * global_batch:(b + 1) * global_batch]
        offset, count = share(len(batch), ranks)
        x, y = (images[batch[offset:offset + count]] - run.mean) / run.std, labels[batch[offset:offset + count]]
        features, loss = run.net(x, y)
        if run.shard is not None:
            loss = run.shard(features, y)
        mean_loss, accuracy = batch_totals(run, features.detach(), y, loss.detach(), len(batch))
        if not math.isfinite(mean_loss):
            raise FloatingPointError(f"the loss became non-finite at epoch {epoch}, step {b + 1}")
        lr = run.optimizer.param_groups[0]["lr"]
        run.optimizer.zero_grad(set_to_none=True)
        # A replicated head's loss is this rank's rows' mean: weighted so that DDP's average of
        # the ranks' gradients is the global batch's (the shares may differ by a row).
        (loss if run.shard is not None else loss * (count * ranks.world / len(batch))).backward()
        run.optimizer.step()
        run.scheduler.step()
        seen, loss_sum, correct = seen + len(batch), loss_sum + mean_loss * len(batch), correct + accuracy * len(batch)
        records.append((epoch, b + 1, mean_loss, accuracy))
        progress.update(b + 1, mean_loss, accuracy, seen / (time.perf_counter() - start))
    seconds = time.perf_counter() - start
    return ({"epoch": epoch, "lr": lr, "train_loss": loss_sum / seen, "train_acc": correct / seen,
             "images_per_second": seen / seconds}, records, seconds)


def class_vectors(head, features, labels):
    """One vector per class [C, D]; with sub-centers each class's nearest to its mean direction."""
    weight, classes = head.weight.detach().cpu(), head.num_classes
    k = weight.shape[0] // classes
    if k == 1:
        return weight
    means = torch.zeros(classes, features.shape[1]).index_add_(0, labels, F.normalize(features, dim=1))
    cos = angular.functional.cosine_matrix(means, weight).view(classes, classes, k).diagonal(0, 0, 1).t()  # [C, K]
    return weight[cos.argmax(1) + torch.arange(classes) * k]


@torch.no_grad()
def evaluate(run):
    """Rank 0's test metrics, target-angle histograms [C, bins], features and labels; each rank
    computes the features of its share of the test set."""
    if run.shard is not None:
        gather_head(run)
    (images, labels), head, device = run.test, run.head, run.ranks.device
    offset, count = share(len(images), run.ranks)
    run.backbone.eval()
    mine = [run.backbone((images[i:min(i + 1000, offset + count)].to(device) - run.mean) / run.std)
            for i in range(offset, offset + count, 1000)]
    run.backbone.train()
    features = gather_rows(torch.cat(mine) if mine else torch.empty(0, head.embedding_dim, device=device), run.ranks)
    if run.ranks.rank != 0:
        return None
    predicted = torch.cat([head.logits(f).argmax(1) for f in features.split(1000)]).cpu()
    features = features.cpu()
    weight = class_vectors(head, features, labels)
    stats = angular.metrics.AngleStats(head.num_classes, features.shape[1])
    stats.update(features, labels)
    angles = stats.compute(weight)
    histogram = angular.metrics.angle_histogram(angular.metrics.target_angles(features, labels, weight), labels,
                                                head.num_classes, HISTOGRAM_BINS)
    retrieval = angular.evaluation.retrieval_metrics(features, labels)
    return ({"test_acc": predicted.eq(labels).double().mean().item(), "wc_intra": angles.wc_intra,
             "w_inter": angles.w_inter, "c_inter": angles.c_inter, "p_at_1": retrieval.precision_at_1,
             "r_precision": retrieval.r_precision, "map_at_r": retrieval.map_at_r}, histogram, features, labels)


def positive(kind):
    def parse(text):
        if kind(text) <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return kind(text)
    parse.__name__ = kind.__name__  # argparse's "invalid int value"
    return parse


def assignment(text):
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="train.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--loss", required=True, type=lambda s: s.replace("_", "-"), choices=sorted(HEADS),
                   help="a margin of angular's table, soft or center ('_' for '-' works too)")
    p.add_argument("--set", action="append", default=[], type=assignment, metavar="NAME=VALUE",
                   help="a setting of the loss module, repeatable: scale=30, margin=0.3, k=none, lambda=0.01, "
                        "label_smoothing=0.1, ...")
    p.add_argument("--head", choices=["sharded", "replicated"], help="under torchrun: the class vectors split over "
                   "the ranks or the whole head in DDP (default sharded; replicated for center)")
    p.add_argument("--model", default="resnet20", help="resnet20 (default) or torchvision:NAME")
    p.add_argument("--embedding-dim", type=int, default=0, metavar="D",
                   help="a linear embedding layer of width D (default 0: the pooled features)")
    p.add_argument("--data", default=DEBIAN_FASHION_MNIST, help=f"the dataset's folder ({DEBIAN_FASHION_MNIST})")
    p.add_argument("--train-subset", type=positive(int), default=0, metavar="N", help="the first N training images")
    p.add_argument("--test-subset", type=positive(int), default=0, metavar="N", help="the first N test images")
    p.add_argument("--epochs", type=positive(int), default=60, help="epochs (default 60)")
    p.add_argument("--batch-size", type=positive(int), default=256, help="images per step and rank (default 256)")
    p.add_argument("--lr", type=positive(float), help="the one-cycle schedule's peak (default 0.1; center 0.01)")
    p.add_argument("--max-steps", type=positive(int), default=0, metavar="N", help="stop after N optimizer steps")
    p.add_argument("--compile", action="store_true", help="torch.compile the backbone with a replicated head")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="cpu (default) or cuda")
    p.add_argument("--threads", type=positive(int), help="CPU threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--timeout", type=positive(int), default=300, help="seconds a rank waits for the others (300)")
    p.add_argument("--out", required=True, help="the run folder")
    p.add_argument("--no-plots", action="store_true", help="without scripts/plot.py's pictures")
    args = p.parse_args(argv)
    if args.model != "resnet20" and not (args.model.startswith("torchvision:") and args.model[12:]):
        p.error(f"argument --model: expected resnet20 or torchvision:NAME, got {args.model!r}")
    if args.embedding_dim < 0:
        p.error(f"argument --embedding-dim: must be >= 0, got {args.embedding_dim}")
    if args.head == "sharded" and args.loss == "center":
        p.error("argument --head: the center loss has no sharded head; take --head replicated")
    args.lr = args.lr or (0.01 if args.loss == "center" else 0.1)
    one_process = os.environ.get("WORLD_SIZE", "1") == "1"
    args.head = "replicated" if args.loss == "center" or one_process else args.head or "sharded"
    try:
        args.settings = head_settings(args.loss, args.set)
        HEADS[args.loss](10, 2, **args.settings)  # the module's own checks of the values, before any work
        if args.head == "sharded":
            unknown = set(args.settings) - set(angular.functional.margin_settings(args.loss)) - set(
                inspect.signature(angular.distributed.ShardedMarginLoss).parameters)
            if unknown:
                raise ValueError(f"the sharded head takes no {sorted(unknown)[0]}")
    except (ValueError, RuntimeError) as e:
        p.error(f"argument --set: {str(e).splitlines()[0]}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ranks = join_ranks(args)
    start = time.perf_counter()
    run = build_run(args, ranks)
    folder = RunFolder(args.out) if ranks.rank == 0 else None
    train_seconds, steps_left = [], args.max_steps or args.epochs * run.steps_per_epoch
    for epoch in range(1, args.epochs + 1):
        epoch_start = time.perf_counter()
        row, steps, seconds = train_epoch(run, epoch, min(run.steps_per_epoch, steps_left))
        train_seconds.append(seconds)
        steps_left -= len(steps)
        evaluation = evaluate(run)
        if folder is not None:
            metrics, histogram, features, labels = evaluation
            row.update(metrics, seconds=time.perf_counter() - epoch_start)
            folder.add_epoch(row, steps, histogram, features, labels)
            folder.write_summary(run, train_seconds, time.perf_counter() - start)
            print(f"epoch {epoch}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f} | test acc "
                  f"{row['test_acc']:.4f} MAP@R {row['map_at_r']:.4f} | WCIntra {row['wc_intra']:.4f} WInter "
                  f"{row['w_inter']:.4f} CInter {row['c_inter']:.4f} | {row['images_per_second']:.0f} images/s",
                  flush=True)
        if steps_left <= 0:
            break
    if folder is not None and not args.no_plots:
        folder.draw()
    if ranks.world > 1:
        # Every rank done before rank 0, which serves the store, takes the group down; then out
        # without the interpreter's teardown, where torch's Gloo group sometimes aborts.
        dist.barrier()
        dist.destroy_process_group()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
