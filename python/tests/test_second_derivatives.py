"""A second derivative through any angular loss: refused with angular's message in eager mode (never
a silently zero gradient penalty), refused in compiled mode, and right (against float64 finite
differences of the first derivative) on the composite path."""

import pytest
import torch

import angular
import angular.functional as AF
from test_table import MARGINS

PENALTY = "angular: the fused margin losses are differentiable once"


def problem(margin, dtype=torch.float32):
    torch.manual_seed(4)
    K = next((s["default"] for s in margin["settings"] if s["name"] == "sub_centers"), 1)
    x = torch.randn(6, 4, dtype=dtype, requires_grad=True)
    w = torch.randn(5 * K, 4, dtype=dtype, requires_grad=True)
    y = torch.randint(0, 5, (6,))
    statistics = [torch.full((1,), float(s["start"]), dtype=dtype) for s in margin["statistics"]]
    return x, w, y, statistics


def losses(margin):
    """(name, loss of features x) for every face of the margin: functional over features and over
    cosines, the module."""
    over_features = getattr(AF, "linear_" + margin["function"] if margin["normalized"] else margin["function"])
    faces = [("features", lambda x, w, y, st: over_features(x, w, y, *st, scale=4.0)
              if "scale" in [s["name"] for s in margin["settings"]] else over_features(x, w, y, *st))]
    if margin["normalized"]:
        over_cosines = getattr(AF, margin["function"])

        def cosine_face(x, w, y, st):
            cos = AF.cosine_matrix(x, w)
            norms = [x.norm(dim=1)] if margin["row_input"] in ("norms", "norm_statistics") else []
            return over_cosines(cos, *norms, y, *st)
        faces.append(("cosines", cosine_face))
    module = getattr(angular, margin["module"])(5, 4)
    faces.append(("module", lambda x, w, y, st: module(x, y)))
    return faces


@pytest.mark.parametrize("margin", MARGINS, ids=[m["name"] for m in MARGINS])
def test_eager_second_derivative_is_refused(margin):
    x, w, y, statistics = problem(margin)
    for face, loss in losses(margin):
        with pytest.raises(RuntimeError, match=PENALTY):
            torch.autograd.grad(loss(x, w, y, statistics), x, create_graph=True)
        g, = torch.autograd.grad(loss(x, w, y, statistics), x)  # once is fine
        assert g.abs().sum() > 0, face


def test_center_loss_second_derivative_is_refused():
    x, w, y, _ = problem(MARGINS[0])
    with pytest.raises(RuntimeError, match=PENALTY):
        torch.autograd.grad(AF.center_loss(x, w, torch.zeros(5, 4), y), x, create_graph=True)


@pytest.mark.parametrize("margin", [m for m in MARGINS if m["name"] in ("arcface", "soft", "adaface")],
                         ids=lambda m: m["name"])
def test_compiled_gradient_penalty_is_refused(margin):
    """Under torch.compile the first derivative keeps a graph, whose backward torch refuses."""
    x, w, y, statistics = problem(margin)
    head = getattr(angular, margin["module"])(5, 4).eval()
    torch._dynamo.reset()
    step = torch.compile(lambda x, y: head(x, y), fullgraph=True)
    with pytest.raises(RuntimeError, match="angular|double backward"):
        loss = step(x, y)
        g, = torch.autograd.grad(loss, x, create_graph=True)
        (loss + 10 * g.pow(2).sum()).backward()


def numeric_second_derivative(loss, x, direction, eps=1e-6):
    """(∇L(x + εv) − ∇L(x − εv)) / 2ε: the Hessian along v from the fused first derivative."""
    def gradient(at):
        a = at.detach().requires_grad_(True)
        return torch.autograd.grad(loss(a), a)[0]
    return (gradient(x + eps * direction) - gradient(x - eps * direction)) / (2 * eps)


@pytest.mark.parametrize("margin", [m for m in MARGINS if m["name"] in ("arc", "arcface", "soft", "sphereface")],
                         ids=lambda m: m["name"])
def test_the_composite_path_gives_the_right_second_derivative(margin):
    x, w, y, statistics = problem(margin, torch.float64)
    fn = getattr(AF, "linear_" + margin["function"] if margin["normalized"] else margin["function"])
    direction = torch.randn_like(x)
    with AF.composite_path():
        g, = torch.autograd.grad(fn(x, w, y), x, create_graph=True)
        hessian_v, = torch.autograd.grad((g * direction).sum(), x)
    want = numeric_second_derivative(lambda a: fn(a, w.detach(), y), x.detach(), direction)
    torch.testing.assert_close(hessian_v, want, rtol=1e-5, atol=1e-7)
    assert hessian_v.abs().max() > 1e-3
