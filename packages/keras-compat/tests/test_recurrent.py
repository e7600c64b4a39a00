"""``scan``, ``RNN`` and the ODE steppers (spec §2.14, §3.1 scan)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from kexue.keras_compat.recurrent import RNN, euler_step, odeint, rk4_step, scan


def _step(w: torch.Tensor, u: torch.Tensor):
    def step(h, x):
        h = torch.tanh(h @ w + x @ u)
        return h, 2 * h

    return step


def _explicit_loop(step, xs, h, order):
    outs = {}
    for t in order:
        h, outs[t] = step(h, xs[:, t])
    return h, torch.stack([outs[t] for t in range(xs.shape[1])], dim=1)


@pytest.mark.parametrize("reverse", [False, True])
def test_scan_equals_explicit_loop(reverse: bool) -> None:
    g = torch.Generator().manual_seed(0)
    w, u = torch.randn(4, 4, generator=g), torch.randn(3, 4, generator=g)
    xs, h0 = torch.randn(2, 6, 3, generator=g), torch.randn(2, 4, generator=g)
    step = _step(w, u)
    carry, ys = scan(step, xs, h0, reverse=reverse)
    order = reversed(range(6)) if reverse else range(6)
    exp_carry, exp_ys = _explicit_loop(step, xs, h0, order)
    torch.testing.assert_close(carry, exp_carry, rtol=0, atol=0)
    torch.testing.assert_close(ys, exp_ys, rtol=0, atol=0)
    assert ys.shape == (2, 6, 4)


def test_scan_time_major_and_tuple_trees() -> None:
    xs = torch.arange(5.0)  # (T,) with dim=0
    carry, (cum, sq) = scan(
        lambda c, x: ((c[0] + x, c[1] + 1), (c[0] + x, x * x)),
        xs,
        (torch.tensor(0.0), torch.tensor(0)),
        dim=0,
    )
    torch.testing.assert_close(cum, torch.tensor([0.0, 1.0, 3.0, 6.0, 10.0]), rtol=0, atol=0)
    torch.testing.assert_close(sq, xs**2, rtol=0, atol=0)
    assert int(carry[1]) == 5


def test_scan_masked_steps_carry_state_unchanged() -> None:
    g = torch.Generator().manual_seed(1)
    w, u = torch.randn(4, 4, generator=g), torch.randn(3, 4, generator=g)
    xs, h0 = torch.randn(2, 5, 3, generator=g), torch.randn(2, 4, generator=g)
    mask = torch.tensor([[1, 1, 0, 1, 0], [0, 1, 1, 1, 1]], dtype=torch.bool)
    step = _step(w, u)
    carry, ys = scan(step, xs, h0, mask=mask)
    for b in range(2):  # reference: run only the valid steps of each sequence
        h, last_out = h0[b : b + 1], torch.zeros(1, 4)
        for t in range(5):
            if mask[b, t]:
                h, last_out = step(h, xs[b : b + 1, t])
            torch.testing.assert_close(ys[b, t], last_out[0], rtol=0, atol=0)
        torch.testing.assert_close(carry[b], h[0], rtol=0, atol=0)
    # a fully masked sequence keeps its initial state exactly
    carry, _ = scan(step, xs, h0, mask=torch.zeros(2, 5, dtype=torch.bool))
    torch.testing.assert_close(carry, h0, rtol=0, atol=0)


def test_scan_bad_input() -> None:
    step = _step(torch.eye(2), torch.eye(2))
    with pytest.raises(ValueError, match="mask"):
        scan(step, torch.ones(1, 3, 2), torch.zeros(1, 2), mask=torch.ones(1, 4))
    with pytest.raises(ValueError, match="time step"):
        scan(step, torch.ones(1, 0, 2), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="dim"):
        scan(step, torch.ones(1, 3, 2), torch.zeros(1, 2), dim=5)
    with pytest.raises(ValueError, match="same length"):
        scan(step, (torch.ones(1, 3), torch.ones(1, 4)), torch.zeros(1, 2))


# --- ODE steppers ---------------------------------------------------------------------------


def _decay_error(method: str, n: int, k: float = 1.5) -> float:
    t = torch.linspace(0.0, 1.0, n + 1, dtype=torch.float64)
    ys = odeint(lambda t, y: -k * y, torch.tensor([1.0], dtype=torch.float64), t, method=method)
    return abs(float(ys[-1, 0]) - math.exp(-k))


def test_euler_converges_at_order_one() -> None:
    errors = [_decay_error("euler", n) for n in (40, 80, 160)]
    for coarse, fine in itertools.pairwise(errors):
        assert coarse / fine == pytest.approx(2.0, abs=0.05)


def test_rk4_converges_at_order_four() -> None:
    errors = [_decay_error("rk4", n) for n in (20, 40)]  # ratios 16.51, 16.25 -> 16
    assert errors[0] / errors[1] == pytest.approx(16.0, rel=0.05)


def test_single_steps_closed_form() -> None:
    y, h = torch.tensor(2.0, dtype=torch.float64), 0.1
    f = lambda t, y: -3.0 * y  # noqa: E731
    torch.testing.assert_close(euler_step(f, 0.0, y, h), y * 0.7, rtol=1e-15, atol=0)
    z = -3.0 * h  # RK4 on a linear ODE multiplies by the 4th-order Taylor polynomial of e^z
    expected = y * (1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24)
    torch.testing.assert_close(rk4_step(f, 0.0, y, h), expected, rtol=1e-14, atol=0)


@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_grad_wrt_k_matches_finite_differences(method: str) -> None:
    t = torch.linspace(0.0, 2.0, 21, dtype=torch.float64)
    target = torch.tensor(0.3, dtype=torch.float64)

    def loss(k: torch.Tensor) -> torch.Tensor:
        ys = odeint(lambda t, y: -k * y, torch.tensor(1.0, dtype=torch.float64), t, method=method)
        return ((ys - target * torch.exp(-t)) ** 2).sum()

    k = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(loss(k), k)
    eps = 1e-6
    with torch.no_grad():
        fd = (loss(k + eps) - loss(k - eps)) / (2 * eps)
    torch.testing.assert_close(grad, fd, rtol=1e-7, atol=1e-9)


def test_fit_k_by_gradient_descent() -> None:
    """The post's use: recover the ODE parameter from a trajectory."""
    t = torch.linspace(0.0, 1.0, 11, dtype=torch.float64)
    y0 = torch.tensor(1.0, dtype=torch.float64)
    data = odeint(lambda t, y: -2.0 * y, y0, t)
    k = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([k], lr=1.0, max_iter=50, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = ((odeint(lambda t, y: -k * y, y0, t) - data) ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    torch.testing.assert_close(
        k.detach(), torch.tensor(2.0, dtype=torch.float64), rtol=1e-6, atol=0
    )


def test_odeint_bad_input() -> None:
    with pytest.raises(ValueError, match="method"):
        odeint(lambda t, y: y, torch.ones(1), torch.linspace(0, 1, 3), method="midpoint")
    with pytest.raises(ValueError, match="t must"):
        odeint(lambda t, y: y, torch.ones(1), torch.zeros(1))


# --- RNN -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell_cls", [nn.RNNCell, nn.GRUCell, nn.LSTMCell])
def test_rnn_matches_torch_layer(cell_cls) -> None:
    torch.manual_seed(0)
    layer_cls = {nn.RNNCell: nn.RNN, nn.GRUCell: nn.GRU, nn.LSTMCell: nn.LSTM}[cell_cls]
    cell, layer = cell_cls(3, 5), layer_cls(3, 5, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(layer, f"{name}_l0").copy_(getattr(cell, name))
    x = torch.randn(2, 7, 3)
    expected, state = layer(x)
    out, final = RNN(cell, return_sequences=True, return_state=True)(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    last = RNN(cell)(x)
    torch.testing.assert_close(last, expected[:, -1], rtol=1e-5, atol=1e-6)
    h = final[0] if cell_cls is nn.LSTMCell else final
    exp_h = state[0][0] if cell_cls is nn.LSTMCell else state[0]
    torch.testing.assert_close(h, exp_h, rtol=1e-5, atol=1e-6)


def test_rnn_mask_returns_last_valid_output_and_reverse() -> None:
    torch.manual_seed(0)
    cell = nn.GRUCell(3, 4)
    x = torch.randn(2, 5, 3)
    lengths = [3, 5]
    mask = torch.arange(5)[None] < torch.tensor(lengths)[:, None]
    last = RNN(cell)(x, mask=mask)
    for b, n in enumerate(lengths):
        # batch 1 vs batch 2 matmuls may round differently
        torch.testing.assert_close(last[b], RNN(cell)(x[b : b + 1, :n])[0], rtol=1e-6, atol=1e-7)
    rev = RNN(cell, reverse=True)(x)
    torch.testing.assert_close(rev, RNN(cell)(x.flip(1)), rtol=0, atol=0)


def test_rnn_custom_cell_and_bad_input() -> None:
    class Cumsum(nn.Module):
        def forward(self, x, state):
            return state + x, state + x

    rnn = RNN(Cumsum(), return_sequences=True)
    out = rnn(torch.ones(1, 3, 2), torch.zeros(1, 2))
    torch.testing.assert_close(out[0, :, 0], torch.tensor([1.0, 2.0, 3.0]), rtol=0, atol=0)
    with pytest.raises(ValueError, match="initial_state"):
        rnn(torch.ones(1, 3, 2))
    with pytest.raises(ValueError, match="x must"):
        rnn(torch.ones(3, 2), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="cell"):
        RNN(3)
