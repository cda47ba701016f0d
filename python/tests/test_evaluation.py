"""Evaluation and angle metrics against brute force in plain PyTorch (float64)."""

import math

import pytest
import torch
import torch.nn.functional as F

import angular


def brute_retrieval(x, labels):
    """Leave-one-out retrieval by sorting the full similarity matrix."""
    u = F.normalize(x.double(), dim=1)
    sim = u @ u.t()
    sim.fill_diagonal_(-math.inf)
    order = sim.argsort(dim=1, descending=True)[:, :-1]
    hits = labels[order] == labels[:, None]
    R = hits.sum(1)
    p1 = hits[:, 0].double().mean().item()
    rp, maps = [], []
    for i in range(len(x)):
        r = R[i].item()
        h = hits[i, :r].double()
        rp.append(h.mean().item())
        precision = h.cumsum(0) / torch.arange(1, r + 1)
        maps.append((precision * h).sum().item() / r)
    first = hits.double().argmax(1) + 1
    mrr = (1.0 / first.double()).mean().item()
    recall = {k: hits[:, :k].any(1).double().mean().item() for k in (1, 2, 4)}
    return p1, sum(rp) / len(rp), sum(maps) / len(maps), mrr, recall


def test_retrieval_equals_brute_force():
    torch.manual_seed(2)
    labels = torch.arange(6).repeat_interleave(5)
    x = torch.randn(30, 8) + 2 * F.one_hot(labels, 8).float()
    m = angular.evaluation.retrieval_metrics(x, labels, recall_at=(1, 2, 4))
    p1, rp, map_r, mrr, recall = brute_retrieval(x, labels)
    assert m.precision_at_1 == pytest.approx(p1)
    assert m.r_precision == pytest.approx(rp)
    assert m.map_at_r == pytest.approx(map_r)
    assert m.mean_reciprocal_rank == pytest.approx(mrr)
    assert m.recall == pytest.approx(recall)


def test_verification_auc_is_the_mann_whitney_statistic():
    torch.manual_seed(3)
    scores = torch.rand(200, dtype=torch.float64)
    same = torch.rand(200) < scores  # informative scores
    m = angular.evaluation.verification_metrics(scores, same, far=(0.1,), folds=5)
    g, i = scores[same], scores[~same]
    auc = ((g[:, None] > i[None, :]).double() + 0.5 * (g[:, None] == i[None, :]).double()).mean().item()
    assert m.genuine_pairs == same.sum().item() and m.impostor_pairs == 200 - same.sum().item()
    assert m.auc == pytest.approx(auc)
    tar = (g >= i.sort(descending=True).values[int(0.1 * len(i)) - 1]).double().mean().item()
    assert m.tar[0.1] == pytest.approx(tar, abs=1.0 / len(g))
    labels = torch.randint(0, 3, (10,))
    pairs = angular.evaluation.verification_metrics(torch.randn(10, 4), labels, folds=2)
    assert pairs.genuine_pairs + pairs.impostor_pairs == 45


def test_angle_stats_equal_their_definitions():
    torch.manual_seed(4)
    C, D = 4, 6
    x, labels, w = torch.randn(40, D), torch.randint(0, C, (40,)), torch.randn(C, D)
    labels[labels == 3] = 2  # class 3 has no samples
    stats = angular.metrics.AngleStats(C, D)
    stats.update(x[:25], labels[:25])
    other = angular.metrics.AngleStats(C, D)
    other.update(x[25:], labels[25:])
    stats.merge(other)
    s = stats.compute(w)
    u, wu = F.normalize(x.double(), dim=1), F.normalize(w.double(), dim=1)
    centers = torch.stack([u[labels == c].mean(0) for c in range(3)])
    wc = torch.acos((F.normalize(centers, dim=1) * wu[:3]).sum(1))
    assert s.empty_classes == 1 and math.isnan(s.wc[3].item())
    assert s.wc_intra == pytest.approx(wc.mean().item())
    pair = torch.acos((wu @ wu.t()).clamp(-1, 1))
    assert s.w_inter == pytest.approx(pair[~torch.eye(C, dtype=torch.bool)].mean().item())
    torch.testing.assert_close(s.centers[:3], centers)
    angles = angular.metrics.target_angles(x, labels, w)
    torch.testing.assert_close(angles.double(), torch.acos((u * wu[labels]).sum(1)), rtol=1e-5, atol=1e-5)
    hist = angular.metrics.angle_histogram(angles, labels, C, 4)
    assert hist.sum().item() == 40 and hist[3].sum().item() == 0
    logits = torch.randn(40, C)
    assert angular.metrics.top_k_accuracy(logits, labels, 2) == pytest.approx(
        (logits.topk(2, 1).indices == labels[:, None]).any(1).double().mean().item())
