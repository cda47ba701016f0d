"""Settings as run-time values: each an attribute of its own name, checked when set, taking effect
at the next step, in eager and in a compiled step, without recompiling."""

import copy
import math

import pytest
import torch
from torch._dynamo.utils import counters

import angular


def test_each_setting_is_an_attribute_of_its_own_name():
    head = angular.ArcFaceLoss(10, 4, margin=0.3)
    assert head.margin_name == "arcface" and head.margin == pytest.approx(0.3) and head.scale == 64.0
    assert head.exact_gradient is True
    head.margin = 0.45
    assert head.margin == pytest.approx(0.45)
    with pytest.raises(RuntimeError, match="margin must be in \\[0, pi\\) radians, got 4"):
        head.margin = 4.0
    assert head.margin == pytest.approx(0.45)  # a refused value changes nothing
    sphere = angular.SphereFaceLoss(10, 4, lambda_=5.0)
    sphere.lambda_ = 2.5
    assert sphere.lambda_ == 2.5 and sphere.margin == 4.0
    arc = angular.ArcLoss(10, 4)
    assert arc.k is None  # automatic: the paper's choice for C
    arc.k = 5.0
    assert arc.k == 5.0
    with pytest.raises(AttributeError, match="sub_centers"):
        angular.SubCenterArcFaceLoss(10, 4).sub_centers = 2
    ada = angular.AdaFaceLoss(10, 4)
    ada.momentum = 0.1
    assert ada.momentum == pytest.approx(0.1)
    with pytest.raises(ValueError, match="momentum"):
        ada.momentum = 0.0
    assert ada.settings == {"scale": 64.0, "margin": pytest.approx(0.4), "h": pytest.approx(0.333),
                            "momentum": pytest.approx(0.1)}


def test_a_changed_setting_changes_the_next_loss():
    torch.manual_seed(0)
    x, y = torch.randn(8, 4), torch.randint(0, 5, (8,))
    head = angular.CosFaceLoss(5, 4)
    for margin in (0.1, 0.2, 0.4):
        head.margin = margin
        want = angular.functional.linear_cosface_loss(x, head.weight, y, margin=margin)
        torch.testing.assert_close(head(x, y), want)
    center = angular.CenterLoss(5, 4)
    center.lambda_ = 0.5
    want = angular.functional.center_loss(x, center.weight, center.centers, y, lambda_=0.5)
    torch.testing.assert_close(center.eval()(x, y), want)


def test_twenty_margins_and_twenty_scales_in_one_compiled_graph():
    """A fullgraph=True training step, 20 steps changing the margin and 20 the scale: one graph,
    each step's loss and gradients equal to eager's."""
    torch.manual_seed(1)
    backbone = torch.nn.Sequential(torch.nn.Linear(10, 8), torch.nn.ReLU(), torch.nn.Linear(8, 6))
    head = angular.ArcFaceLoss(5, 6, scale=16.0).train()
    eager_backbone, eager_head = copy.deepcopy(backbone), copy.deepcopy(head)
    x, y = torch.randn(12, 10), torch.randint(0, 5, (12,))
    torch._dynamo.reset()
    counters.clear()
    step = torch.compile(lambda x, y: head(backbone(x), y), fullgraph=True)
    schedule = [("margin", 0.05 + 0.02 * i) for i in range(20)] + [("scale", 20.0 + 2.0 * i) for i in range(20)]
    losses = set()
    for name, value in schedule:
        setattr(head, name, value)
        setattr(eager_head, name, value)
        for module in (head, backbone, eager_head, eager_backbone):
            module.zero_grad()
        loss = step(x, y)
        loss.backward()
        want = eager_head(eager_backbone(x), y)
        want.backward()
        torch.testing.assert_close(loss, want, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(head.weight.grad, eager_head.weight.grad, rtol=1e-5, atol=1e-6)
        losses.add(round(loss.item(), 6))
    assert len(losses) == len(schedule)  # every value took effect
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])
    assert not math.isnan(loss.item())
