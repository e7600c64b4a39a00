"""``scan`` over a step function, an ``RNN(cell)`` module and ODE steppers (the RNN≈ODE post).

The post observes that an RNN is a discretised ODE: any recurrence
``(carry_t, y_t) = step(carry_{t-1}, x_t)`` can be unrolled by one loop, and when ``step`` is an
Euler or Runge–Kutta step of ``dy/dt = f(t, y)`` the unrolled graph integrates the ODE, so its
parameters can be fitted by gradient descent through the loop. Keras 3 has
``keras.layers.RNN(cell)`` natively; ``torchdiffeq`` is the full-featured ODE library.

References:
    The RNN/ODE post ("花式RNN简介：貌离神合的RNN与ODE"), https://kexue.fm (series cited in
    spec §1.2).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import nn

__all__ = ["RNN", "euler_step", "odeint", "rk4_step", "scan"]

Tree = Any  # a tensor, or a (nested) tuple/list of tensors
ODEFunc = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""The right-hand side ``f(t, y)`` of ``dy/dt = f(t, y)`` (:func:`euler_step`, :func:`rk4_step`,
:func:`odeint`)."""


def _map(fn: Callable[..., torch.Tensor], *trees: Tree) -> Tree:
    first = trees[0]
    if isinstance(first, torch.Tensor):
        return fn(*trees)
    if isinstance(first, (tuple, list)):
        if any(not isinstance(t, (tuple, list)) or len(t) != len(first) for t in trees[1:]):
            raise ValueError("carry/output structure changed between steps")
        return type(first)(_map(fn, *parts) for parts in zip(*trees, strict=True))
    raise ValueError(f"expected a tensor or a tuple/list of tensors, got {type(first).__name__}")


def _leaves(tree: Tree) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    _map(lambda t: out.append(t) or t, tree)
    return out


def scan(
    step: Callable[[Tree, Tree], tuple[Tree, Tree]],
    xs: Tree,
    init: Tree,
    reverse: bool = False,
    mask: torch.Tensor | None = None,
    *,
    dim: int = 1,
) -> tuple[Tree, Tree]:
    """Unrolls ``(carry, out_t) = step(carry, x_t)`` over the time axis of ``xs``.

    ``x_t = xs.select(dim, t)`` (applied to every tensor of a tuple ``xs``); the outputs are
    stacked along ``dim`` at their original time positions, also with ``reverse=True``
    (``t = T−1, …, 0``, as ``jax.lax.scan(reverse=True)``). Where ``mask[:, t]`` is false the
    carry is kept unchanged and the output repeats the previous step's (zeros before the first
    valid step; Keras ``RNN`` masking semantics), so the last output is the last valid one.

    Arguments:
        step: ``step(carry, x_t) -> (new_carry, out_t)``; carries and outputs are tensors or
            tuples/lists of tensors with a fixed structure.
        xs: Inputs ``(B, T, ...)`` for ``dim=1`` (``(T, ...)`` for ``dim=0``), or a tuple of them.
        init: Initial carry.
        reverse: Iterate from the last time step to the first.
        mask: Optional ``(B, T)`` boolean mask (true = valid step); carry and output tensors
            must have the batch ``B`` as their first dimension.
        dim: Time axis of ``xs`` and of the stacked outputs (1 = batch-first).

    Returns:
        ``(final_carry, outputs)``.

    Example:
        >>> carry, ys = scan(lambda c, x: (c + x, c + x), torch.ones(2, 5, 3), torch.zeros(2, 3))
        >>> ys[:, -1, 0]  # cumulative sum
        tensor([5., 5.])
    """
    leaves = _leaves(xs)
    if not leaves:
        raise ValueError("xs must contain at least one tensor")
    if not -leaves[0].ndim <= dim < leaves[0].ndim:
        raise ValueError(f"dim={dim} out of range for xs of shape {tuple(leaves[0].shape)}")
    steps = leaves[0].shape[dim]
    if any(x.shape[dim] != steps for x in leaves):
        raise ValueError(f"all xs must have the same length along dim={dim}")
    if steps == 0:
        raise ValueError("xs must have at least one time step")
    if mask is not None:
        if mask.ndim != 2 or mask.shape[1] != steps:
            raise ValueError(f"mask must have shape (B, {steps}), got {tuple(mask.shape)}")
        mask = mask.to(torch.bool)

    def keep(m: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        def fn(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
            if new.shape[:1] != m.shape:
                raise ValueError(
                    f"with mask, carries and outputs need batch {m.shape[0]} first, got "
                    f"{tuple(new.shape)}"
                )
            return torch.where(m.view(-1, *([1] * (new.ndim - 1))), new, old)

        return fn

    carry = init
    outs: list[Tree] = [None] * steps
    prev: Tree = None
    for t in reversed(range(steps)) if reverse else range(steps):
        new_carry, out = step(carry, _map(lambda x, t=t: x.select(dim, t), xs))
        if mask is not None:
            m = mask[:, t]
            new_carry = _map(keep(m), new_carry, carry)
            prev = _map(torch.zeros_like, out) if prev is None else prev
            out = _map(keep(m), out, prev)
            prev = out
        carry = new_carry
        outs[t] = out
    return carry, _map(lambda *ys: torch.stack(ys, dim=dim), *outs)


def euler_step(
    f: ODEFunc,
    t: torch.Tensor,
    y: torch.Tensor,
    h: torch.Tensor | float,
) -> torch.Tensor:
    """One explicit Euler step ``y + h·f(t, y)`` of ``dy/dt = f(t, y)`` (global error O(h))."""
    return y + h * f(t, y)


def rk4_step(
    f: ODEFunc,
    t: torch.Tensor,
    y: torch.Tensor,
    h: torch.Tensor | float,
) -> torch.Tensor:
    """One classical Runge–Kutta step of ``dy/dt = f(t, y)`` (global error O(h⁴)).

    ``y + h/6·(k₁ + 2k₂ + 2k₃ + k₄)`` with ``k₁ = f(t, y)``, ``k₂ = f(t + h/2, y + h/2·k₁)``,
    ``k₃ = f(t + h/2, y + h/2·k₂)``, ``k₄ = f(t + h, y + h·k₃)``.
    """
    k1 = f(t, y)
    k2 = f(t + h / 2, y + h / 2 * k1)
    k3 = f(t + h / 2, y + h / 2 * k2)
    k4 = f(t + h, y + h * k3)
    return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def odeint(
    f: ODEFunc,
    y0: torch.Tensor,
    t: torch.Tensor,
    *,
    method: Literal["euler", "rk4"] = "rk4",
) -> torch.Tensor:
    """Integrates ``dy/dt = f(t, y)`` on the grid ``t`` with fixed steps, via :func:`scan`.

    Differentiable end to end (gradients reach parameters used inside ``f``); the argument
    order ``f(t, y)`` follows ``torchdiffeq``.

    Arguments:
        f: The vector field ``f(t, y) -> dy/dt`` (same shape as ``y``).
        y0: Initial state, any shape.
        t: ``(N,)`` increasing or decreasing time grid, ``N >= 2``; steps ``h = t[i+1] − t[i]``.
        method: ``"euler"`` or ``"rk4"``.

    Returns:
        ``(N, *y0.shape)``: the state at every grid time, starting with ``y0``.
    """
    if method not in ("euler", "rk4"):
        raise ValueError(f'method must be "euler" or "rk4", got {method!r}')
    if t.ndim != 1 or t.numel() < 2:
        raise ValueError(f"t must be a 1-D grid with at least 2 times, got shape {tuple(t.shape)}")
    stepper = euler_step if method == "euler" else rk4_step

    def step(y: torch.Tensor, x: tuple[torch.Tensor, torch.Tensor]) -> tuple[Any, Any]:
        y_next = stepper(f, x[0], y, x[1])
        return y_next, y_next

    _, ys = scan(step, (t[:-1], t[1:] - t[:-1]), y0, dim=0)
    return torch.cat([y0.unsqueeze(0), ys], dim=0)


class RNN(nn.Module):
    """Runs a recurrent cell over a sequence (Keras ``RNN(cell)`` for plain PyTorch).

    The cell is called as ``cell(x_t, state) -> (output, new_state)``. ``nn.RNNCell`` and
    ``nn.GRUCell`` (``state = h``, ``output = h``) and ``nn.LSTMCell`` (``state = (h, c)``,
    ``output = h``) are adapted automatically.

    Arguments:
        cell: The cell module.
        return_sequences: Return all outputs ``(B, T, H)`` instead of the last one ``(B, H)``
            (the last processed step: index 0 when ``reverse``).
        return_state: Also return the final state.
        reverse: Process the sequence backwards (outputs keep their time positions).
        batch_first: Inputs ``(B, T, ...)`` (default) or ``(T, B, ...)``.

    Example:
        >>> rnn = RNN(nn.GRUCell(3, 8), return_sequences=True)
        >>> rnn(torch.randn(2, 5, 3)).shape
        torch.Size([2, 5, 8])
    """

    def __init__(
        self,
        cell: nn.Module,
        return_sequences: bool = False,
        return_state: bool = False,
        reverse: bool = False,
        batch_first: bool = True,
    ) -> None:
        super().__init__()
        if not callable(cell):
            raise ValueError(f"cell must be a callable module, got {type(cell).__name__}")
        self.cell = cell
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.reverse = reverse
        self.batch_first = batch_first

    def _call_cell(self, x_t: torch.Tensor, state: Tree) -> tuple[Tree, Tree]:
        if isinstance(self.cell, nn.LSTMCell):
            h, c = self.cell(x_t, state)
            return h, (h, c)
        if isinstance(self.cell, (nn.RNNCell, nn.GRUCell)):
            h = self.cell(x_t, state)
            return h, h
        result = self.cell(x_t, state)
        if not isinstance(result, Sequence) or len(result) != 2:
            raise ValueError("cell must return (output, new_state)")
        return result[0], result[1]

    def _initial_state(self, x: torch.Tensor) -> Tree:
        batch = x.shape[0] if self.batch_first else x.shape[1]
        if isinstance(self.cell, (nn.RNNCell, nn.GRUCell, nn.LSTMCell)):
            h = x.new_zeros(batch, self.cell.hidden_size)
            return (h, h.clone()) if isinstance(self.cell, nn.LSTMCell) else h
        if hasattr(self.cell, "get_initial_state"):
            return self.cell.get_initial_state(batch)
        raise ValueError(
            "initial_state is required: the cell is not a torch RNN/GRU/LSTM cell and has no "
            "get_initial_state(batch_size)"
        )

    def forward(
        self,
        x: torch.Tensor,
        initial_state: Tree | None = None,
        mask: torch.Tensor | None = None,
    ) -> Any:
        """Runs the cell over ``x: (B, T, F)``; ``mask: (B, T)`` skips padded steps (the state
        is carried unchanged). Returns outputs (and the final state if ``return_state``)."""
        if x.ndim < 3:
            raise ValueError(f"x must have shape (B, T, F) or (T, B, F), got {tuple(x.shape)}")
        dim = 1 if self.batch_first else 0
        state = self._initial_state(x) if initial_state is None else initial_state

        def step(s: Tree, x_t: torch.Tensor) -> tuple[Tree, Tree]:
            out, new_s = self._call_cell(x_t, s)
            return new_s, out

        final, outs = scan(step, x, state, self.reverse, mask, dim=dim)
        result = (
            outs
            if self.return_sequences
            else _map(lambda o: o.select(dim, 0 if self.reverse else -1), outs)
        )
        return (result, final) if self.return_state else result
