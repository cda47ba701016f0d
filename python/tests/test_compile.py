"""torch.compile(fullgraph=True) of a small model + each module: no graph break, and the loss,
the head's gradients and its buffers equal eager's to 1e-6 (float32)."""

import copy

import pytest
import torch

import angular
from test_modules import MODULES


@pytest.mark.parametrize("cls,kwargs,functional", MODULES)
def test_compiled_step_equals_eager(cls, kwargs, functional):
    torch.manual_seed(1)
    backbone = torch.nn.Sequential(torch.nn.Linear(10, 8), torch.nn.ReLU(), torch.nn.Linear(8, 6))
    head = cls(5, 6, **kwargs).train()
    x, y = torch.randn(12, 10), torch.randint(0, 5, (12,))
    y[4] = -100

    def step(forward, backbone, head):
        loss = forward(x, y)
        loss.backward()
        return (loss.detach(), [p.grad for p in head.parameters()], head.state_dict(),
                [p.grad for p in backbone.parameters()])

    eager_backbone, eager_head = copy.deepcopy(backbone), copy.deepcopy(head)
    want = step(lambda x, y: eager_head(eager_backbone(x), y), eager_backbone, eager_head)
    torch._dynamo.reset()
    compiled_backbone, compiled_head = copy.deepcopy(backbone), copy.deepcopy(head)
    forward = torch.compile(lambda x, y: compiled_head(compiled_backbone(x), y), fullgraph=True)
    got = step(forward, compiled_backbone, compiled_head)
    torch.testing.assert_close(got[0], want[0], rtol=1e-6, atol=1e-7)
    for a, b in zip(got[1], want[1]):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(got[2], want[2], rtol=1e-6, atol=1e-7)  # the buffers moved alike
    # The backbone's own backward is inductor's code, whose float32 sums round in another order.
    for a, b in zip(got[3], want[3]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
