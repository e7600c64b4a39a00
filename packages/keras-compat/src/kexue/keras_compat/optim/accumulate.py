"""Gradient accumulation helper: divide the loss by k, step every k-th micro-step, ``no_sync``.

bert4keras's ``extend_with_gradient_accumulation`` averages gradients in optimizer slots (spec
§2.9). In PyTorch, ``.grad`` already accumulates across ``backward()`` calls, so all that is needed
is the pattern of accelerate's ``accumulate()``, Lightning's ``accumulate_grad_batches`` and Keras's
``gradient_accumulation_steps``: scale each micro-batch loss by 1/k, skip the DDP all-reduce on the
non-final micro-steps (``no_sync()``), and call ``optimizer.step()`` once per k micro-steps, so
gradient transforms registered with :func:`extend` see the final gradient exactly once. The helper
never wraps the optimizer.

References:
    bert4keras ``extend_with_gradient_accumulation``; post 6418: https://kexue.fm/archives/6418
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

__all__ = ["Accumulator", "accumulate"]


class Accumulator:
    """State of :func:`accumulate`; see there.

    Attributes:
        micro_steps: Completed micro-steps.
        optimizer_steps: ``optimizer.step()`` calls made by this helper (= micro_steps // k).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        steps: int,
        *,
        model: nn.Module | None = None,
        scheduler: Any | None = None,
        scaler: Any | None = None,
        set_to_none: bool = True,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise ValueError(
                f"optimizer: expected a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps: expected an integer >= 1, got {steps!r}")
        if model is not None and not isinstance(model, nn.Module):
            raise ValueError(f"model: expected an nn.Module, got {type(model).__name__}")
        self.optimizer = optimizer
        self.steps = steps
        self.model = model
        self.scheduler = scheduler
        self.scaler = scaler
        self.set_to_none = set_to_none
        self.micro_steps = 0
        self.optimizer_steps = 0

    @property
    def sync_gradients(self) -> bool:
        """Whether the current (next) micro-step is the last of its cycle, i.e. ends with a step."""
        return (self.micro_steps + 1) % self.steps == 0

    @contextlib.contextmanager
    def micro_step(self) -> Iterator[Accumulator]:
        """Context for one micro-batch: forward and :meth:`backward` inside it.

        On non-final micro-steps a DDP ``model`` runs under ``no_sync()`` (the forward must be
        inside too, as DDP reads the flag there). On exit without exception, the k-th micro-step
        calls ``optimizer.step()`` (through ``scaler.step`` if given), ``scheduler.step()`` and
        ``optimizer.zero_grad()``.
        """
        no_sync = getattr(self.model, "no_sync", None)
        ctx = no_sync() if (no_sync is not None and not self.sync_gradients) else None
        with ctx if ctx is not None else contextlib.nullcontext():
            yield self
        self.micro_steps += 1
        if self.micro_steps % self.steps == 0:
            self._step()

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        """``(loss / k).backward()`` (scaled by ``scaler`` when given)."""
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError("loss: expected a scalar tensor")
        loss = loss / self.steps
        if self.scaler is not None:
            loss = self.scaler.scale(loss)
        loss.backward(**kwargs)

    def _step(self) -> None:
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=self.set_to_none)
        self.optimizer_steps += 1

    def flush(self) -> bool:
        """Step on a partial cycle (e.g. at the end of an epoch); returns whether it stepped.

        The partial gradients were scaled by 1/k, not by 1/(number of micro-steps).
        """
        if self.micro_steps % self.steps == 0:
            return False
        self.micro_steps += self.steps - self.micro_steps % self.steps
        self._step()
        return True

    def state_dict(self) -> dict[str, int]:
        """Counters, for checkpoints."""
        return {"micro_steps": self.micro_steps, "optimizer_steps": self.optimizer_steps}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore :meth:`state_dict`."""
        self.micro_steps = int(state["micro_steps"])
        self.optimizer_steps = int(state["optimizer_steps"])


def accumulate(
    optimizer: Optimizer,
    steps: int,
    *,
    model: nn.Module | None = None,
    scheduler: Any | None = None,
    scaler: Any | None = None,
    set_to_none: bool = True,
) -> Accumulator:
    """Gradient accumulation over ``steps`` micro-batches (bert4keras ``grad_accum_steps``).

    With a mean loss and no batch-dependent layers (BatchNorm), k micro-batches of size b give
    exactly the gradient of one batch of size k·b; the optimizer and scheduler step once per k
    micro-steps (unlike bert4keras v1, whose schedules count micro-steps).

    Arguments:
        optimizer: The optimizer (not wrapped; hooks from :func:`extend` run once per real step).
        steps: k, micro-steps per optimizer step (≥ 1).
        model: The (possibly DDP-wrapped) model; DDP's ``no_sync()`` is used on non-final
            micro-steps.
        scheduler: Optional LR scheduler stepped after each optimizer step.
        scaler: Optional ``torch.amp.GradScaler``.
        set_to_none: Passed to ``optimizer.zero_grad``.

    Returns:
        An :class:`Accumulator`.

    Example:
        >>> acc = accumulate(opt, 4, model=ddp_model, scheduler=sched)
        >>> for x, y in loader:
        ...     with acc.micro_step():
        ...         acc.backward(loss_fn(ddp_model(x), y))
    """
    return Accumulator(
        optimizer, steps, model=model, scheduler=scheduler, scaler=scaler, set_to_none=set_to_none
    )
