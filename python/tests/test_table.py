"""The Python losses come from the C++ table (torch.ops.angular.loss_table): the same margins, and
every function's and module's signature lists each setting with its C++ default, the
cross-entropy's arguments with theirs, type hints and a docstring that names them."""

import inspect
import json
import math

import pytest
import torch

import angular
import angular.functional as AF

TABLE = json.loads(torch.ops.angular.loss_table())
MARGINS = TABLE["margins"]
CROSS_ENTROPY = {s["name"]: s["default"] for s in TABLE["cross_entropy"]}
TYPES = {"float": float, "float?": "Optional[float]", "bool": bool, "int": int, "str": str}


def python_name(name):
    return "lambda_" if name == "lambda" else name


def same(a, b):
    return (a is None and b is None) or (a is not None and b is not None and a == b and type(a) is type(b)) or (
        isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool) and a == b)


def check_parameters(fn, settings, cross_entropy, doc=None):
    doc = doc or fn.__doc__
    params = inspect.signature(fn).parameters
    assert "kwargs" not in params, fn
    for s in settings:
        p = params[python_name(s["name"])]
        assert same(p.default, s["default"]), (fn, s["name"], p.default, s["default"])
        hint = TYPES[s["type"]]
        assert p.annotation == hint or str(p.annotation).endswith(str(hint)), (fn, s["name"], p.annotation)
        assert s["doc"] in doc, (fn, s["name"])
    for name in cross_entropy:
        default = CROSS_ENTROPY[name]
        assert params[name].default == default and params[name].kind == inspect.Parameter.KEYWORD_ONLY, (fn, name)
    return params


def functions(margin):
    over_features = getattr(AF, "linear_" + margin["function"] if margin["normalized"] else margin["function"])
    over_cosines = getattr(AF, margin["function"]) if margin["normalized"] else None
    return over_cosines, over_features


def test_the_python_losses_are_the_cpp_margins_and_no_others():
    assert len(MARGINS) >= 10
    want_functions = {"center_loss"}
    for m in MARGINS:
        over_cosines, over_features = functions(m)
        want_functions |= {over_features.__name__} | ({over_cosines.__name__} if over_cosines else set())
        assert issubclass(getattr(angular, m["module"]), torch.nn.Module)
        assert getattr(angular, m["module"]).margin_name == m["name"]
    assert {n for n in AF.__all__ if n.endswith("_loss")} == want_functions
    assert set(angular.modules.__all__) == {m["module"] for m in MARGINS} | {"CenterLoss"}


@pytest.mark.parametrize("margin", MARGINS, ids=[m["name"] for m in MARGINS])
def test_signatures_list_every_setting_with_the_cpp_default(margin):
    over_cosines, over_features = functions(margin)
    if over_cosines is not None:
        check_parameters(over_cosines, margin["settings"], ["reduction", "ignore_index", "label_smoothing",
                                                            "class_weight"])
    check_parameters(over_features, margin["settings"], list(CROSS_ENTROPY))
    module = getattr(angular, margin["module"])
    params = check_parameters(module.__init__, margin["settings"] + margin["module_settings"], list(CROSS_ENTROPY),
                              module.__doc__)
    assert list(params)[:3] == ["self", "num_classes", "embedding_dim"]
    assert margin["summary"][1:] in module.__doc__ and "weight" in module.__doc__
    for s in margin["settings"] + margin["module_settings"]:  # an attribute of its own name, with its doc
        assert s["doc"] in getattr(module, python_name(s["name"])).__doc__
    buffers = dict(module(5, 4).named_buffers())  # the running statistics, from C++'s starting values
    assert sorted(buffers) == sorted(s["name"] for s in margin["statistics"])
    for s in margin["statistics"]:
        assert buffers[s["name"]].tolist() == [s["start"]]


def test_the_center_loss_lists_its_cpp_settings():
    center = TABLE["center"]
    check_parameters(AF.center_loss, center["settings"], list(CROSS_ENTROPY))
    params = inspect.signature(angular.CenterLoss.__init__).parameters
    for s in center["module_settings"]:
        assert same(params[python_name(s["name"])].default, s["default"]), s
        assert s["doc"] in angular.CenterLoss.__doc__


@pytest.mark.parametrize("margin", MARGINS, ids=[m["name"] for m in MARGINS])
def test_defaults_give_the_cpp_defaults_loss(margin):
    """The loss with every default, from Python, equals the operator given the C++ defaults, and
    the module's equals the function's."""
    torch.manual_seed(2)
    K = next((s["default"] for s in margin["settings"] if s["name"] == "sub_centers"), 1)
    x, w, y = torch.randn(6, 4, dtype=torch.float64), torch.randn(5 * K, 4, dtype=torch.float64), torch.randint(0, 5, (6,))
    statistics = [torch.full((1,), float(s["start"]), dtype=torch.float64) for s in margin["statistics"]]
    defaults = torch.tensor([math.nan if s["default"] is None else float(s["default"]) for s in margin["settings"]],
                            dtype=torch.float64)
    want = torch.ops.angular.linear_margin_cross_entropy(x, w, y, margin["name"], defaults, statistics, None, 1, -100,
                                                         0.0, 0)
    _, over_features = functions(margin)
    torch.testing.assert_close(over_features(x, w, y, *statistics), want, rtol=0, atol=0)
    module = getattr(angular, margin["module"])(5, 4).double().eval()
    with torch.no_grad():
        module.weight.copy_(w)
    torch.testing.assert_close(module(x, y), want, rtol=0, atol=0)


def test_settings_come_back_by_name():
    assert AF.margin_settings("arcface") == {"scale": 64.0, "margin": 0.5, "exact_gradient": True,
                                             "continuation": True}
    assert AF.margin_settings("sphereface") == {"margin": 4.0, "lambda_": 0.0}
    with pytest.raises(ValueError, match="unknown margin 'bogus'"):
        AF.margin_settings("bogus")


def test_help_shows_the_formula_and_the_settings():
    doc = AF.linear_arcface_loss.__doc__
    assert "cos(θ + m)" in doc and "scale:" in doc and "(default 64.0)" in doc and "class_weight:" in doc
    assert angular.ArcFaceLoss.__doc__ != torch.nn.Module.__doc__
    assert "margin:" in angular.ArcFaceLoss.__doc__
