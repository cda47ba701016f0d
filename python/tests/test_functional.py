"""Each loss against the float64 oracle in plain PyTorch (oracle.py): loss and gradients, every
reduction, ignore_index, label smoothing, class weights; over cosines and over features."""

import math

import pytest
import torch

import angular.functional as AF
import oracle

# (function over cosines, its margin, settings given by keyword, sub-centers)
COSINE_LOSSES = [
    (AF.arc_loss, "arc", {}, 1),
    (AF.arc_loss, "arc", {"k": 5.0}, 1),
    (AF.arcface_loss, "arcface", {"scale": 30.0, "margin": 0.7}, 1),
    (AF.arcface_loss, "arcface", {"scale": 16.0, "exact_gradient": False}, 1),
    (AF.cosface_loss, "cosface", {"scale": 20.0, "margin": 0.2}, 1),
    (AF.normface_loss, "normface", {"scale": 8.0}, 1),
    (AF.combined_margin_loss, "combined", {"scale": 10.0, "m1": 0.9, "m2": 0.4, "m3": 0.15}, 1),
    (AF.subcenter_arcface_loss, "arcface", {"sub_centers": 2, "scale": 12.0, "margin": 0.3}, 2),
]

LINEAR_LOSSES = [
    (AF.linear_arc_loss, "arc", {}),
    (AF.linear_arcface_loss, "arcface", {"scale": 30.0, "margin": 0.6}),
    (AF.linear_cosface_loss, "cosface", {"scale": 20.0}),
    (AF.linear_normface_loss, "normface", {"scale": 8.0}),
    (AF.linear_combined_margin_loss, "combined", {"scale": 10.0, "m1": 0.9, "m2": 0.4, "m3": 0.15}),
    (AF.linear_sphereface_loss, "sphereface", {"margin": 3.0, "lambda_": 0.5}),
    (AF.softmax_loss, "soft", {}),
]

CROSS_ENTROPY = [
    dict(reduction="mean"),
    dict(reduction="sum"),
    dict(reduction="none"),
    dict(reduction="mean", ignore_index=2),
    dict(reduction="mean", label_smoothing=0.1),
    dict(reduction="sum", label_smoothing=0.2, ignore_index=-1),
    dict(reduction="mean", class_weight=True),
    dict(reduction="none", class_weight=True, ignore_index=0),
]


def oracle_settings(settings):
    return {k.rstrip("_"): v for k, v in settings.items() if k != "sub_centers"}


def problem(B, C, dtype, K=1):
    cos = (torch.rand(B, C * K, dtype=torch.float64) * 2 - 1).to(dtype)
    return cos, torch.randint(0, C, (B,))


def grads(loss, inputs):
    upstream = torch.rand_like(loss) if loss.dim() else torch.tensor(1.3, dtype=loss.dtype)
    return torch.autograd.grad(loss, inputs, upstream.to(loss.dtype)), upstream


@pytest.mark.parametrize("fn,margin,settings,K", COSINE_LOSSES)
@pytest.mark.parametrize("ce", CROSS_ENTROPY)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cosine_losses_equal_the_oracle(fn, margin, settings, K, ce, dtype):
    B, C = 13, 7
    cos, target = problem(B, C, dtype, K)
    ce = dict(ce)
    ignore = ce.get("ignore_index", -100)
    target[3] = ignore
    class_weight = torch.rand(C, dtype=torch.float64) + 0.5 if ce.pop("class_weight", False) else None
    cos.requires_grad_(True)
    got = fn(cos, target, class_weight=None if class_weight is None else class_weight.to(dtype), **settings, **ce)
    (g_got,), upstream = grads(got, [cos])

    ref_cos = cos.detach().double().requires_grad_(True)
    want = oracle.loss(margin, ref_cos, target, oracle_settings(settings), weight=class_weight, sub_centers=K, **ce)
    (g_want,) = torch.autograd.grad(want, [ref_cos], upstream.double())

    tol = dict(rtol=1e-9, atol=1e-11) if dtype == torch.float64 else dict(rtol=2e-4, atol=2e-5)
    assert got.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    torch.testing.assert_close(got.double(), want, **tol)
    torch.testing.assert_close(g_got.double(), g_want, **tol)


@pytest.mark.parametrize("fn,margin,settings", LINEAR_LOSSES)
@pytest.mark.parametrize("ce", CROSS_ENTROPY)
@pytest.mark.parametrize("chunk_rows", [0, 4])
def test_linear_losses_equal_the_oracle(fn, margin, settings, ce, chunk_rows):
    B, C, D = 11, 9, 6
    features = torch.randn(B, D, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(C, D, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, C, (B,))
    ce = dict(ce)
    target[2] = ce.get("ignore_index", -100)
    class_weight = torch.rand(C, dtype=torch.float64) + 0.5 if ce.pop("class_weight", False) else None
    got = fn(features, weight, target, class_weight=class_weight, chunk_rows=chunk_rows, **settings, **ce)
    (gx, gw), upstream = grads(got, [features, weight])

    x, w = features.detach().clone().requires_grad_(True), weight.detach().clone().requires_grad_(True)
    want = oracle.linear_loss(margin, x, w, target, oracle_settings(settings), weight=class_weight, **ce)
    wx, ww = torch.autograd.grad(want, [x, w], upstream)
    tol = dict(rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(got, want, **tol)
    torch.testing.assert_close(gx, wx, **tol)
    torch.testing.assert_close(gw, ww, **tol)


def test_sphereface_over_cosines_passes_a_gradient_to_the_norms():
    cos, target = problem(10, 5, torch.float64)
    norms = (torch.rand(10, dtype=torch.float64) * 3 + 0.5)
    cos.requires_grad_(True)
    norms.requires_grad_(True)
    got = AF.sphereface_loss(cos, norms, target, margin=4.0, lambda_=1.0)
    want = oracle.loss("sphereface", cos, target, {"margin": 4.0, "lambda": 1.0}, norms=norms)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    for a, b in zip(torch.autograd.grad(got, [cos, norms]), torch.autograd.grad(want, [cos, norms])):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_edge_cases_one_class_empty_batch_and_cosines_at_the_bounds():
    one = torch.tensor([[0.3], [-1.0], [1.0]], dtype=torch.float64, requires_grad=True)
    got = AF.arcface_loss(one, torch.zeros(3, dtype=torch.long))
    torch.testing.assert_close(got, oracle.loss("arcface", one, torch.zeros(3, dtype=torch.long)))
    empty = torch.empty(0, 4)
    assert math.isnan(AF.arcface_loss(empty, torch.empty(0, dtype=torch.long)).item())
    assert AF.arcface_loss(empty, torch.empty(0, dtype=torch.long), reduction="sum").item() == 0
    assert AF.arcface_loss(empty, torch.empty(0, dtype=torch.long), reduction="none").shape == (0,)
    # θ + m > π: the continuation c − m sin m
    far = torch.tensor([[-0.99, 0.5]], dtype=torch.float64)
    torch.testing.assert_close(AF.arcface_loss(far, torch.tensor([0]), scale=4.0, margin=0.5),
                               oracle.loss("arcface", far, torch.tensor([0]), {"scale": 4.0, "margin": 0.5}))


def test_non_contiguous_and_half_inputs():
    cos, target = problem(8, 12, torch.float32)
    strided = cos.t().contiguous().t()
    assert not strided.is_contiguous()
    torch.testing.assert_close(AF.cosface_loss(strided, target), AF.cosface_loss(cos, target))
    for dtype in (torch.float16, torch.bfloat16):
        low = cos.to(dtype)
        got = AF.arcface_loss(low, target, scale=8.0)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got.double(), oracle.loss("arcface", low.double(), target, {"scale": 8.0}),
                                   rtol=1e-5, atol=1e-5)


def test_center_loss_is_the_softmax_plus_the_center_term():
    x = torch.randn(9, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 4, dtype=torch.float64)
    centers = torch.randn(5, 4, dtype=torch.float64)
    target = torch.randint(0, 5, (9,))
    target[0] = -100
    got = AF.center_loss(x, w, centers, target, lambda_=0.2)
    kept = target != -100
    term = 0.5 * ((x - centers[target.clamp(min=0)]) ** 2).sum(1)[kept].mean()
    want = torch.nn.functional.cross_entropy(x @ w.t(), target) + 0.2 * term
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(torch.autograd.grad(got, x)[0], torch.autograd.grad(want, x)[0])
