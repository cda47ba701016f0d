"""Many classes from Python: where one row chunk of 128 MiB cannot hold the batch's products the
operators take the class-blocked pass (its products parked in ∂W where B <= D, computed again
otherwise), whose loss and gradients equal the float64 composite path's; and the freed ∂W buffer
it keeps for the next step is given back by angular.release_gradient_buffers()."""

import pytest
import torch

import angular
import angular.functional as AF

WORKSPACE = 128 << 20


@pytest.mark.parametrize("loss, rows, classes, dim", [
    ("linear_arc_loss", 300, 120_000, 512),      # 279 rows fit: blocks, products parked in ∂W
    ("linear_arcface_loss", 300, 120_000, 512),
    ("linear_arcface_loss", 480, 70_000, 8),     # 479 rows fit: blocks, B > D, products again
    ("softmax_loss", 480, 70_000, 8),
])
def test_a_batch_no_row_chunk_holds_runs_in_class_blocks_and_equals_the_composite(loss, rows, classes, dim):
    assert WORKSPACE // (classes * 4) < rows
    torch.manual_seed(5)
    x = torch.randn(rows, dim, requires_grad=True)
    w = torch.randn(classes, dim, requires_grad=True)
    y = torch.randint(0, classes, (rows,))
    fn = getattr(AF, loss)
    fn(x, w, y, label_smoothing=0.1).backward()
    x64, w64 = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    with AF.composite_path():
        want = fn(x64, w64, y, label_smoothing=0.1)
    want.backward()
    got = fn(x.detach(), w.detach(), y, label_smoothing=0.1)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    for grad, expected in ((x.grad, x64.grad), (w.grad, w64.grad)):
        scale = expected.abs().max().item()
        assert (grad.double() - expected).abs().max().item() <= 2e-5 * scale


def test_release_gradient_buffers_gives_back_the_freed_gradient_kept_for_the_next_step():
    angular.release_gradient_buffers()
    rows = WORKSPACE // (40_000 * 4) + 2  # no row chunk holds the batch: class blocks
    x = torch.randn(rows, 512, requires_grad=True)
    w = torch.randn(40_000, 512, requires_grad=True)  # an 82 MB gradient: kept once freed
    y = torch.randint(0, 40_000, (rows,))
    AF.linear_arcface_loss(x, w, y).backward()
    first = w.grad.data_ptr()
    w.grad = None
    AF.linear_arcface_loss(x, w, y).backward()
    assert w.grad.data_ptr() == first  # the freed buffer, not fresh pages
    assert angular.release_gradient_buffers() == 0  # held by w.grad
    w.grad = None
    assert angular.release_gradient_buffers() == 40_000 * 512 * 4
    assert angular.release_gradient_buffers() == 0
