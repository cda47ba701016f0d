"""angular.compat.insightface against a float64 restatement of arcface_torch's math, written here:
its margins on cosine logits, and PartialFC_V2 on 2 and 3 processes (torchrun, Gloo) with a
different batch size on every rank, sample rates 1 and 0.5 (through the record of kept classes):
the loss with each probability clamped at 1e-30, the local embeddings' gradient times the world
size, each rank's weight gradient."""

import math

import pytest
import torch
import torch.nn.functional as F

from angular.compat.insightface import ArcFace, CombinedMarginLoss, CosFace
from test_distributed import torchrun

ARCFACE, COSFACE = (64.0, 1.0, 0.5, 0.0), (64.0, 1.0, 0.0, 0.4)


def margin_logits(cos, y, margin):
    """arcface_torch's CombinedMarginLoss in float64: ArcFace adds m2 to the label's angle with
    the gradient of cos θ (no continuation), CosFace subtracts m3; rows labelled −1 keep theirs."""
    s, _, m2, m3 = margin
    rows = torch.nonzero(y != -1).squeeze(1)
    c = cos[rows, y[rows]]
    new = c - m3 if m3 > 0 else c + (torch.cos(torch.acos(c) + m2) - c).detach()
    return cos.index_put((rows, y[rows]), new) * s


def partial_fc(x, weight, y, margin, kept=None):
    """arcface_torch's PartialFC_V2 restated in float64 over the whole batch: the loss with each
    sample's probability clamped at 1e-30, the unclamped loss, and the gradients of x and W of the
    unclamped one, over the kept classes (all where `kept` is None)."""
    x = x.double().requires_grad_()
    w = weight.double().requires_grad_()
    classes = torch.arange(len(weight)) if kept is None else kept.sort().values
    column = torch.searchsorted(classes, y)
    cos = (F.normalize(x) @ F.normalize(w[classes]).t()).clamp(-1, 1)
    log_p = torch.log_softmax(margin_logits(cos, column, margin), 1).gather(1, column.unsqueeze(1)).squeeze(1)
    value = -log_p.exp().clamp_min(1e-30).log().mean()
    unclamped = -log_p.mean()
    unclamped.backward()
    return value.detach(), unclamped.detach(), x.grad, w.grad


def test_combined_margin_loss_is_arcface_torchs_on_logits():
    torch.manual_seed(3)
    cos = torch.rand(6, 5, dtype=torch.float64) * 2 - 1
    cos[0, 2] = -0.99  # θ + m > π: no continuation
    y = torch.tensor([2, 0, -1, 4, 1, 3])
    for margin in (ARCFACE, COSFACE):
        mine = cos.clone().requires_grad_()
        ref = cos.clone().requires_grad_()
        out = CombinedMarginLoss(*margin)(mine, y)
        expected = margin_logits(ref, y, margin)
        torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
        weights = torch.randn_like(cos)
        (out * weights).sum().backward()
        (expected * weights).sum().backward()
        torch.testing.assert_close(mine.grad, ref.grad)  # straight through: s everywhere for ArcFace
    assert torch.allclose(CombinedMarginLoss(*ARCFACE)(cos, y)[0, 2], 64 * torch.cos(torch.acos(cos[0, 2]) + 0.5))


def test_arcface_and_cosface_classes():
    cos = torch.tensor([[0.3, -0.95], [0.1, 0.2]], dtype=torch.float64)
    y = torch.tensor([1, -1])
    theta = math.acos(-0.95)
    out = ArcFace(s=10.0, margin=0.5)(cos, y)  # exact, continued past θ + m > π
    assert theta + 0.5 > math.pi
    assert out[0, 1].item() == pytest.approx(10 * (-0.95 - 0.5 * math.sin(0.5)))
    torch.testing.assert_close(out[1], cos[1] * 10)
    assert CosFace(s=10.0, m=0.4)(cos, y)[0, 1].item() == pytest.approx(10 * (-0.95 - 0.4))


def test_combinations_arcface_torch_refuses_are_refused():
    for margin in ((64, 0.9, 0.5, 0.0), (64, 1.0, 0.3, 0.2), (64, 1.35, 0.0, 0.2)):
        with pytest.raises(ValueError, match="CombinedMarginLoss"):
            CombinedMarginLoss(*margin)


def save_problem(tmp_path, rows, C=11, D=8):
    torch.manual_seed(11)
    weight = torch.randn(C, D)
    x, y = torch.randn(sum(rows), D), torch.randint(0, C, (sum(rows),))
    x[1] = -weight[y[1]] * 2 + 0.3 * torch.randn(D)  # θ + m > π for its label
    cases = [(ARCFACE, 1.0), (ARCFACE, 0.5), (COSFACE, 1.0)]
    torch.save({"x": x, "y": y, "weight": weight, "C": C, "rows": rows, "cases": cases}, tmp_path / "problem.pt")
    return x, y, weight, cases


@pytest.mark.parametrize("rows", [[7, 4], [5, 2, 4]], ids=["2 ranks", "3 ranks"])
def test_partial_fc_v2_is_arcface_torchs(tmp_path, rows):
    x, y, weight, cases = save_problem(tmp_path, rows)
    world = len(rows)
    torchrun(str(tmp_path), "", nproc=world, script="insightface_worker.py")
    got = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]
    clamped = False
    for case, (margin, rate) in enumerate(cases):
        kept = None
        if rate < 1:
            kept = torch.cat([got[r][case]["kept"] for r in range(world)])
            for r in range(world):  # arcface_torch's count: the positives, or int(rate·C_r) if more
                offset, count = got[r][case]["classes"]
                positives = len(torch.unique(y[(y >= offset) & (y < offset + count)]))
                assert len(got[r][case]["kept"]) == max(positives, int(rate * count))
        loss, unclamped, x_grad, w_grad = partial_fc(x, weight, y, margin, kept)
        clamped |= bool(loss < unclamped - 0.1)
        begin = 0
        for r in range(world):
            result = got[r][case]
            offset, count = result["classes"]
            torch.testing.assert_close(result["loss"].double(), loss, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(result["x_grad"].double(), world * x_grad[begin:begin + rows[r]],
                                       rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(result["weight_grad"].double(), w_grad[offset:offset + count],
                                       rtol=1e-4, atol=1e-5)
            begin += rows[r]
    assert clamped  # the problem is one where the clamp changes the loss
