"""angular.compat.pml against pytorch-metric-learning itself (installed beside angular): the same W
gives PML's loss, gradients and logits in float64, float32 and float16; state_dicts load both
ways; indices_tuple, reducers, regularizers and get_outliers mean what they mean in PML; W's
gradient costs no transpose copy."""

import pytest
import torch
from pytorch_metric_learning import losses as pml
from pytorch_metric_learning import reducers, regularizers

import angular
from angular.compat import pml as dropin

C, D, N = 7, 5, 24
CASES = [  # (class name, constructor arguments)
    ("ArcFaceLoss", {}), ("ArcFaceLoss", {"margin": 3, "scale": 16}),  # 3 degrees, not radians
    ("CosFaceLoss", {"margin": 0.2, "scale": 30}), ("NormalizedSoftmaxLoss", {"temperature": 0.1}),
    ("SphereFaceLoss", {}), ("SphereFaceLoss", {"margin": 3, "scale": 2}),
    ("SubCenterArcFaceLoss", {"sub_centers": 3}),
]
IDS = [f"{name}{args}" for name, args in CASES]


def pair(name, args, dtype=torch.float64):
    """PML's loss and the drop-in, with the same W."""
    theirs = getattr(pml, name)(num_classes=C, embedding_size=D, **args)
    mine = getattr(dropin, name)(num_classes=C, embedding_size=D, **args)
    mine.load_state_dict(theirs.state_dict())
    return theirs.to(dtype), mine.to(dtype)


def batch(dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(N, D, generator=g) * 3).to(dtype)
    x[0] = -x[0]  # some angles near π, where ArcFace continues
    return x, torch.randint(0, C, (N,), generator=g)


def loss_and_gradients(loss_func, x, y, **kwargs):
    x = x.clone().requires_grad_()
    loss = loss_func(x, y, **kwargs)
    loss.backward()
    return loss.detach(), x.grad, loss_func.W.grad


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-5), (torch.float16, 2e-2)])
@pytest.mark.parametrize("name,args", CASES, ids=IDS)
def test_loss_and_gradients_are_pmls(name, args, dtype, tol):
    theirs, mine = pair(name, args, torch.float64)
    x, y = batch()
    with torch.no_grad():  # W near the embeddings' directions: losses of every size
        theirs.W.mul_(0.5)
        mine.W.copy_(theirs.W)
    expected = loss_and_gradients(theirs, x, y)  # PML in float64: the reference of every dtype
    got = loss_and_gradients(mine.to(dtype), x.to(dtype), y)
    assert got[0].dtype == dtype and mine.W.dtype == dtype  # PML's casts: W and the loss in x's dtype
    for a, b in zip(got, expected):
        torch.testing.assert_close(a.double(), b, rtol=tol, atol=tol)


@pytest.mark.parametrize("name,args", CASES, ids=IDS)
def test_get_logits_is_pmls(name, args):
    theirs, mine = pair(name, args)
    x, _ = batch()
    torch.testing.assert_close(mine.get_logits(x), theirs.get_logits(x))


@pytest.mark.parametrize("name,args", CASES, ids=IDS)
def test_state_dicts_load_both_ways(name, args):
    theirs = getattr(pml, name)(num_classes=C, embedding_size=D, **args).double()
    mine = getattr(dropin, name)(num_classes=C, embedding_size=D, **args).double()
    assert list(mine.state_dict()) == ["W"] and mine.W.shape == theirs.W.shape
    x, y = batch()
    mine.load_state_dict(theirs.state_dict())
    torch.testing.assert_close(mine(x, y), theirs(x, y))
    back = getattr(pml, name)(num_classes=C, embedding_size=D, **args).double()
    mine.W.data.normal_()
    back.load_state_dict(mine.state_dict())
    torch.testing.assert_close(back(x, y), mine(x, y))


def test_indices_tuples_weight_samples_as_pml():
    theirs, mine = pair("ArcFaceLoss", {"scale": 16})
    x, y = batch()
    pairs = (torch.tensor([0, 0, 3, 5]), torch.tensor([1, 2, 4, 5]), torch.tensor([0, 6]), torch.tensor([7, 8]))
    triplets = (torch.tensor([0, 1, 2]), torch.tensor([3, 3, 4]), torch.tensor([5, 9, 9]))
    for indices in (pairs, triplets, (torch.tensor([], dtype=torch.long),) * 3):
        torch.testing.assert_close(mine(x, y, indices), theirs(x, y, indices))
    weights = dropin.miner_weights(triplets, y, torch.float64)  # index 9 named twice, the most
    assert weights[9] == 1 and weights[0] == 0.5 and weights[6] == 0


def test_reducers_and_regularizers_as_pml():
    x, y = batch()
    for kwargs in ({"reducer": reducers.DoNothingReducer()}, {"reducer": reducers.SumReducer()},
                   {"weight_regularizer": regularizers.RegularFaceRegularizer(), "weight_reg_weight": 0.1},
                   {"embedding_regularizer": regularizers.LpRegularizer()}):
        theirs = pml.CosFaceLoss(num_classes=C, embedding_size=D, **kwargs).double()
        mine = dropin.CosFaceLoss(num_classes=C, embedding_size=D, **kwargs).double()
        mine.load_state_dict(theirs.state_dict())
        got, expected = mine(x, y), theirs(x, y)
        if isinstance(expected, dict):  # DoNothingReducer: PML's dictionary
            assert got.keys() == expected.keys()
            torch.testing.assert_close(got["loss"]["losses"], expected["loss"]["losses"])
            assert got["loss"]["reduction_type"] == "element"
        else:
            torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("threshold", [20, 60, 75, 180])
def test_get_outliers_is_pmls(threshold):
    theirs, mine = pair("SubCenterArcFaceLoss", {"sub_centers": 3})
    x, y = batch(seed=4)
    y[y == 2] = 3  # a class absent from the batch
    outliers, centers = mine.get_outliers(x, y, threshold=threshold)
    expected, expected_centers = theirs.get_outliers(x, y, threshold=threshold)
    assert outliers.tolist() == expected.long().tolist()
    present = torch.unique(y)
    torch.testing.assert_close(centers[:, present], expected_centers[:, present])
    assert (centers[:, 2] == 0).all()


def test_refusals_name_the_argument():
    with pytest.raises(ValueError, match="degrees"):
        dropin.ArcFaceLoss(C, D, margin=200)
    with pytest.raises(ValueError, match="labels"):
        dropin.ArcFaceLoss(C, D)(torch.randn(3, D))
    with pytest.raises(ValueError, match="distance"):
        dropin.ArcFaceLoss(C, D, distance=torch.nn.Identity())


def test_w_gradient_is_written_in_ws_layout():
    """The operators see W.t(); its gradient comes back transposed, so W's is contiguous with no
    copy. The gradient equals that of a contiguous copy."""
    x, y = batch(torch.float32)
    w = torch.randn(D, C, requires_grad=True)
    view = w.t()
    (grad,) = torch.autograd.grad(_linear_arcface(x, view, y), view)
    assert grad.t().is_contiguous()
    copy = w.detach().t().contiguous().requires_grad_()
    (expected,) = torch.autograd.grad(_linear_arcface(x, copy, y), copy)
    torch.testing.assert_close(grad, expected)


def _linear_arcface(x, weight, y):
    return angular.functional.linear_arcface_loss(x, weight, y, scale=16.0)
