"""The operators themselves: opcheck (schema, autograd registration, fake kernels, AOT dispatch),
gradcheck in float64, the refusals of bad inputs, autocast."""

import pytest
import torch

import angular.functional as AF

ops = torch.ops.angular


def call_args(margin="arcface", settings=(8.0, 0.3, 1.0, 1.0), statistics=(), reduction=1, ignore_index=-100,
              smoothing=0.0, class_weight=None):
    """The operators' arguments after the differentiable tensors; settings in the table's order."""
    return [margin, torch.tensor(settings, dtype=torch.float64), list(statistics), class_weight, reduction,
            ignore_index, smoothing]


def cosine_cases():
    B, C = 6, 5
    target = torch.randint(0, C, (B,))
    target[0] = -100
    for reduction in (0, 1, 2):
        cos = (torch.rand(B, C) * 1.6 - 0.8).requires_grad_(True)
        yield (cos, None, target, *call_args(reduction=reduction))
    norms = (torch.rand(B) + 0.5).requires_grad_(True)
    yield (torch.rand(B, C).requires_grad_(True), norms, target,
           *call_args("sphereface", (3.0, 0.0), reduction=1))
    yield (torch.rand(B, C), torch.rand(B) + 1, target,
           *call_args("adaface", (64.0, 0.4, 0.333), (torch.tensor([1.2]), torch.tensor([0.4])), reduction=0))


def feature_cases():
    B, C, D = 7, 5, 4
    target = torch.randint(0, C, (B,))
    for reduction in (0, 1, 2):
        yield (torch.randn(B, D, requires_grad=True), torch.randn(C, D, requires_grad=True), target,
               *call_args(reduction=reduction, smoothing=0.1, class_weight=torch.rand(C) + 0.5), 3)
    yield (torch.randn(B, D, requires_grad=True), torch.randn(C, D, requires_grad=True), target,
           *call_args("curricularface", (4.0, 0.5), (torch.tensor([0.3]),)), 0)
    yield (torch.randn(B, D), torch.randn(C, D, requires_grad=True), target, *call_args("soft", ()), 0)


@pytest.mark.parametrize("args", list(cosine_cases()))
def test_opcheck_over_cosines(args):
    torch.library.opcheck(ops.margin_cross_entropy.default, args)
    cos, norms = args[0].detach(), None if args[1] is None else args[1].detach()
    plain = (cos, norms) + tuple(args[2:])
    torch.library.opcheck(ops.margin_cross_entropy_forward.default, plain + ([True, norms is not None],))
    grad = torch.rand(cos.shape[0]) if args[7] == 0 else torch.tensor(0.7)
    torch.library.opcheck(ops.margin_cross_entropy_backward.default, (grad,) + plain + ([True, norms is not None],))


@pytest.mark.parametrize("args", list(feature_cases()))
def test_opcheck_over_features(args):
    torch.library.opcheck(ops.linear_margin_cross_entropy.default, args)
    plain = (args[0].detach(), args[1].detach()) + tuple(args[2:])
    torch.library.opcheck(ops.linear_margin_cross_entropy_forward.default, plain + ([True, True],))
    grad = torch.rand(args[0].shape[0]) if args[7] == 0 else torch.tensor(0.7)
    torch.library.opcheck(ops.linear_margin_cross_entropy_backward.default, (grad,) + plain + ([True, True],))


def test_opcheck_of_the_composite_ops():
    x, w, centers = torch.randn(5, 3, requires_grad=True), torch.randn(4, 3, requires_grad=True), torch.randn(4, 3)
    target = torch.randint(0, 4, (5,))
    settings = torch.tensor([0.2], dtype=torch.float64)
    torch.library.opcheck(ops.cosine_matrix.default, (x, w))
    torch.library.opcheck(ops.margin_logits.default, (x, w, "arc", [4.0]))
    torch.library.opcheck(ops.center_term.default, (x, centers, target, 1, -100))
    torch.library.opcheck(ops.center_loss.default, (x, w, centers, target, settings, None, 1, -100, 0.0, 0))
    torch.library.opcheck(ops.update_centers_.default, (centers.clone(), x.detach(), target,
                                                        torch.tensor(0.5, dtype=torch.float64), -100))


def test_opcheck_of_the_statistics_step():
    x, w = torch.randn(6, 3, requires_grad=True), torch.randn(4, 3, requires_grad=True)
    target = torch.randint(0, 4, (6,))
    momentum = torch.tensor([0.1], dtype=torch.float64)
    for margin, settings, statistics in (("adaface", (64.0, 0.4, 0.333), [torch.tensor([20.0]), torch.tensor([100.0])]),
                                         ("curricularface", (64.0, 0.5), [torch.tensor([0.0])])):
        torch.library.opcheck(ops.margin_statistics_step.default,
                              (x, w, target, *call_args(margin, settings, statistics), 0, momentum))


def test_gradcheck_in_float64():
    B, C, D = 5, 4, 3
    target = torch.randint(0, C, (B,))
    cos = (torch.rand(B, C, dtype=torch.float64) * 1.6 - 0.8).requires_grad_(True)
    norms = (torch.rand(B, dtype=torch.float64) + 0.5).requires_grad_(True)
    x = torch.randn(B, D, dtype=torch.float64, requires_grad=True)
    w = torch.randn(C, D, dtype=torch.float64, requires_grad=True)
    for reduction in ("mean", "sum", "none"):
        assert torch.autograd.gradcheck(lambda c: AF.arcface_loss(c, target, scale=4.0, reduction=reduction), (cos,))
        assert torch.autograd.gradcheck(
            lambda c, n: AF.sphereface_loss(c, n, target, margin=2.0, reduction=reduction), (cos, norms))
        assert torch.autograd.gradcheck(
            lambda a, b: AF.linear_cosface_loss(a, b, target, scale=4.0, reduction=reduction, label_smoothing=0.1),
            (x, w))
        assert torch.autograd.gradcheck(lambda a, b: AF.softmax_loss(a, b, target, reduction=reduction), (x, w))


def test_bad_inputs_raise_with_angulars_message():
    cos, target = torch.rand(4, 3), torch.tensor([0, 1, 7, 2])
    with pytest.raises(RuntimeError, match="7"):
        AF.arcface_loss(cos, target)
    with pytest.raises(RuntimeError, match="scale"):
        AF.arcface_loss(cos, torch.tensor([0, 1, 2, 2]), scale=-1.0)
    with pytest.raises(RuntimeError, match="cos"):
        AF.cosface_loss(torch.rand(4), torch.tensor([0, 1, 2, 2]))
    with pytest.raises(ValueError, match="reduction"):
        AF.arc_loss(cos, torch.tensor([0, 1, 2, 2]), reduction="average")
    with pytest.raises(RuntimeError, match="unknown margin 'bogus'"):
        ops.margin_cross_entropy(cos, None, torch.tensor([0, 1, 2, 2]), *call_args("bogus"))
    with pytest.raises(RuntimeError, match="the arc loss has 1 settings, got 4 values"):
        ops.margin_cross_entropy(cos, None, torch.tensor([0, 1, 2, 2]), *call_args("arc"))
    with pytest.raises(RuntimeError, match="weight"):
        AF.linear_arcface_loss(torch.randn(4, 5), torch.randn(3, 6), torch.tensor([0, 1, 2, 2]))


def test_autocast_runs_the_ops_in_float32():
    x = torch.randn(6, 8)
    backbone = torch.nn.Linear(8, 5)
    weight = torch.randn(4, 5)
    target = torch.randint(0, 4, (6,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features = backbone(x)
        assert features.dtype == torch.bfloat16
        loss = AF.linear_arcface_loss(features, weight, target, scale=8.0)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, AF.linear_arcface_loss(features.float(), weight, target, scale=8.0))
    loss.backward()
    assert backbone.weight.grad is not None and backbone.weight.grad.dtype == torch.float32


def test_opcheck_of_the_evaluation_ops():
    """Their results are numbers read from the data, which no fake kernel can give: schema and
    autograd registration are checked (torch.compile treats them as graph breaks)."""
    checks = ("test_schema", "test_autograd_registration")
    x, labels = torch.randn(12, 4), torch.randint(0, 3, (12,))
    scores, same = torch.rand(20, dtype=torch.float64), torch.rand(20) < 0.5
    for op, args in [
        (ops.retrieval_metrics.default, (x, labels, None, None, [1, 2], 0)),
        (ops.retrieval_metrics.default, (x[:4], labels[:4], x, labels, [1], 5)),
        (ops.verification_metrics.default, (scores, same, [0.1], 4)),
        (ops.all_pairs.default, (x, labels)),
        (ops.pair_similarities.default, (x[:6], x[6:])),
        (ops.target_angles.default, (x, labels, torch.randn(3, 4))),
        (ops.angle_histogram.default, (torch.rand(12), labels, 3, 4, 3.0)),
        (ops.top_k_accuracy.default, (torch.randn(12, 3), labels, 2)),
        (ops.w_inter.default, (torch.randn(3, 4),)),
    ]:
        torch.library.opcheck(op, args, test_utils=checks)


def test_no_grad_gives_the_same_loss_without_a_graph():
    x, w = torch.randn(6, 4, requires_grad=True), torch.randn(5, 4, requires_grad=True)
    y = torch.randint(0, 5, (6,))
    with torch.no_grad():
        quiet = AF.linear_cosface_loss(x, w, y)
    assert quiet.grad_fn is None
    torch.testing.assert_close(quiet, AF.linear_cosface_loss(x, w, y))


def test_the_callers_floating_point_state_is_left_as_it_was():
    """The fused kernels flush denormals while they run; afterwards every thread computes them again."""
    tiny = torch.full((1 << 20,), 1e-40)  # denormal floats, a product spread over the threads
    assert (tiny * 1.0).ne(0).all()
    x, w = torch.randn(64, 16, requires_grad=True), torch.randn(300, 16, requires_grad=True)
    AF.linear_arcface_loss(x, w, torch.randint(0, 300, (64,))).backward()
    AF.arcface_loss(torch.rand(64, 300, requires_grad=True), torch.randint(0, 300, (64,))).backward()
    assert (tiny * 1.0).ne(0).all()
    assert torch.tensor(1e-40) * 1.0 != 0
