"""The modules: their loss is the functional loss of their class vectors; running statistics
move in training mode only; state_dict round-trips, also into a new process."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

import angular
import angular.functional as AF

MODULES = [
    (angular.SoftmaxLoss, {}, lambda m, x, y: AF.softmax_loss(x, m.weight, y)),
    (angular.ArcLoss, {"k": 4.0}, lambda m, x, y: AF.linear_arc_loss(x, m.weight, y, k=4.0)),
    (angular.ArcFaceLoss, {"scale": 16.0}, lambda m, x, y: AF.linear_arcface_loss(x, m.weight, y, scale=16.0)),
    (angular.CosFaceLoss, {}, lambda m, x, y: AF.linear_cosface_loss(x, m.weight, y)),
    (angular.NormFaceLoss, {}, lambda m, x, y: AF.linear_normface_loss(x, m.weight, y)),
    (angular.CombinedMarginLoss, {"m3": 0.1}, lambda m, x, y: AF.linear_combined_margin_loss(x, m.weight, y, m3=0.1)),
    (angular.SphereFaceLoss, {}, lambda m, x, y: AF.linear_sphereface_loss(x, m.weight, y)),
    (angular.SubCenterArcFaceLoss, {"sub_centers": 2},
     lambda m, x, y: AF.linear_subcenter_arcface_loss(x, m.weight, y, sub_centers=2)),
    (angular.AdaFaceLoss, {}, lambda m, x, y: AF.linear_adaface_loss(x, m.weight, y, m.norm_mean, m.norm_std)),
    (angular.CurricularFaceLoss, {}, lambda m, x, y: AF.linear_curricularface_loss(x, m.weight, y, m.t)),
    (angular.CenterLoss, {"lambda_": 0.1}, lambda m, x, y: AF.center_loss(x, m.weight, m.centers, y, lambda_=0.1)),
]


@pytest.mark.parametrize("cls,kwargs,functional", MODULES)
def test_module_loss_is_the_functional_loss(cls, kwargs, functional):
    module = cls(7, 5, **kwargs).eval()
    assert module.weight.shape == (7 * kwargs.get("sub_centers", 1), 5)
    x, y = torch.randn(9, 5), torch.randint(0, 7, (9,))
    torch.testing.assert_close(module(x, y), functional(module, x, y))
    assert module.logits(x).shape == (9, 7)
    assert module.cosines(x).shape == (9, 7 * kwargs.get("sub_centers", 1))


def test_statistics_move_in_training_mode_only():
    ada = angular.AdaFaceLoss(5, 4, momentum=0.5)
    x, y = torch.randn(8, 4) * 3, torch.randint(0, 5, (8,))
    ada.eval()(x, y)
    assert ada.norm_mean.item() == 20.0 and ada.norm_std.item() == 100.0
    ada.train()(x, y)
    norms = x.norm(dim=1)
    torch.testing.assert_close(ada.norm_mean, torch.tensor([0.5 * norms.mean().item() + 10.0]))
    curricular = angular.CurricularFaceLoss(5, 4, momentum=0.5).train()
    curricular(x, y)
    label_cos = AF.cosine_matrix(x, curricular.weight).gather(1, y[:, None]).mean()
    torch.testing.assert_close(curricular.t, 0.5 * label_cos.reshape(1))
    center = angular.CenterLoss(5, 4, alpha=1.0).train()
    center(x, y)
    assert center.centers.abs().sum() > 0


def test_bad_settings_are_refused_when_the_module_is_built():
    with pytest.raises(RuntimeError, match="margin"):
        angular.ArcFaceLoss(5, 4, margin=4.0)
    with pytest.raises(ValueError, match="num_classes"):
        angular.CosFaceLoss(0, 4)
    with pytest.raises(ValueError, match="momentum"):
        angular.AdaFaceLoss(5, 4, momentum=0.0)


def test_state_dict_round_trips_into_a_new_process(tmp_path):
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(6, 4))
    head = angular.SubCenterArcFaceLoss(5, 4, sub_centers=2, scale=8.0)
    x, y = torch.randn(10, 6), torch.randint(0, 5, (10,))
    loss = head(model(x), y).item()
    torch.save({"model": model.state_dict(), "head": head.state_dict(), "x": x, "y": y}, tmp_path / "saved.pt")
    script = textwrap.dedent(f"""
        import torch, angular
        saved = torch.load({str(tmp_path / 'saved.pt')!r})
        model = torch.nn.Sequential(torch.nn.Linear(6, 4))
        head = angular.SubCenterArcFaceLoss(5, 4, sub_centers=2, scale=8.0)
        model.load_state_dict(saved["model"])
        head.load_state_dict(saved["head"])
        print(repr(head(model(saved["x"]), saved["y"]).item()))
    """)
    env = dict(os.environ, PYTHONPATH="")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env,
                         cwd=tmp_path, check=True)
    assert float(out.stdout.strip()) == loss


@pytest.mark.parametrize("cls", [angular.AdaFaceLoss, angular.CurricularFaceLoss])
def test_a_bad_batch_moves_no_running_statistic(cls):
    """The statistics move in the operator that checks the batch first: a label out of range, a
    wrong D, leave them as they were."""
    head = cls(5, 4, momentum=0.5).train()
    before = {name: b.clone() for name, b in head.named_buffers()}
    with pytest.raises(RuntimeError, match="target"):
        head(torch.randn(6, 4), torch.tensor([0, 1, 2, 9, 1, 0]))
    with pytest.raises(RuntimeError, match="features"):
        head(torch.randn(6, 3), torch.zeros(6, dtype=torch.long))
    for name, b in head.named_buffers():
        torch.testing.assert_close(b, before[name], rtol=0, atol=0)
    head(torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 1, 0]))  # a good one moves them
    assert any(not torch.equal(b, before[name]) for name, b in head.named_buffers())


def test_center_loss_checks_the_centers_rows():
    x, w, y = torch.randn(6, 4), torch.randn(5, 4), torch.randint(0, 5, (6,))
    with pytest.raises(RuntimeError, match="centers must be \\[5, 4\\]"):
        AF.center_loss(x, w, torch.zeros(7, 4), y)
    with pytest.raises(RuntimeError, match="lambda must be"):
        AF.center_loss(x, w, torch.zeros(5, 4), y, lambda_=-1.0)


def test_weight_is_the_class_vectors_and_class_weight_the_class_weights():
    class_weight = torch.rand(5) + 0.5
    head = angular.CosFaceLoss(5, 4, class_weight=class_weight)
    assert head.weight.shape == (5, 4) and torch.equal(head.class_weight, class_weight)
    with pytest.raises(TypeError, match="weight"):
        angular.CosFaceLoss(5, 4, weight=class_weight)
    x, y = torch.randn(6, 4), torch.randint(0, 5, (6,))
    torch.testing.assert_close(head(x, y), AF.linear_cosface_loss(x, head.weight, y, class_weight=class_weight))
    torch.testing.assert_close(AF.cosface_loss(head.cosines(x), y, class_weight=class_weight), head(x, y))
