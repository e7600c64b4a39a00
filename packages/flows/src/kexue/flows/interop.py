"""``torch.distributions`` adapters following zuko's conventions (spec flows-splines §3.6).

- :func:`as_transform` wraps a :class:`~kexue.flows.base.FlowLayer` (with its context captured)
  as a ``torch.distributions.Transform``: ``T(x)`` is kexue's y, ``T.inv(y)`` kexue's inverse,
  ``log_abs_det_jacobian(x, y)`` kexue's per-sample logdet (recomputed from x, so it does not
  assume y came from the last call, which torch's ``_InverseTransform`` relies on), and
  ``call_and_ladj(x)`` returns both from one kexue call (zuko's addition to ``Transform``).
  ``domain = codomain = independent(real, event_dim)``, ``bijective = True``, ``cache_size=0``.
- :func:`as_zuko` returns a lazy module whose ``forward(c)`` builds that Transform for context
  ``c`` (zuko's ``LazyTransform`` protocol, duck-typed: zuko is not a dependency).
- :func:`from_zuko` wraps a zuko lazy transform (``forward(c)`` returns a Transform) as a kexue
  :class:`~kexue.flows.base.FlowLayer` through ``call_and_ladj`` (duck-typed, zuko not imported).
- :func:`as_torch_distribution` wraps a :class:`~kexue.flows.flow.Flow` as a
  ``torch.distributions.Distribution`` with ``log_prob``, ``sample`` / ``rsample``,
  ``rsample_and_log_prob``, ``batch_shape`` (the context's leading shape, as zuko expands the base
  to the context) and ``event_shape`` (the prior's shape).

Direction: kexue's ``forward`` maps data to latent, as zuko's flow transform does; sampling
goes through the inverse.

References:
    - probabilists/zuko ``lazy.py`` (``LazyTransform``, ``Flow``), ``distributions.py``
      (``NormalizingFlow``); PyTorch ``torch.distributions.transforms``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Size, Tensor, nn
from torch.distributions import Distribution, Transform, constraints

from kexue.flows.base import FlowLayer
from kexue.flows.flow import Flow

__all__ = [
    "FlowDistribution",
    "LayerTransform",
    "ZukoLayer",
    "as_torch_distribution",
    "as_transform",
    "as_zuko",
    "from_zuko",
]


def _flatten(x: Tensor, event_dim: int) -> tuple[Tensor, Size]:
    batch = x.shape[: x.dim() - event_dim]
    return x.reshape(-1, *x.shape[x.dim() - event_dim :]), batch


def _expand_context(context: Tensor | None, batch: Size, n: int) -> Tensor | None:
    """The context repeated for ``n`` flattened samples whose batch shape is ``batch``."""
    if context is None:
        return None
    c = context.shape[-1]
    ctx_batch = context.shape[:-1]
    try:
        full = torch.broadcast_shapes(batch, ctx_batch)
    except RuntimeError:
        full = None
    if full != batch:
        raise ValueError(
            f"context of shape {tuple(context.shape)} does not broadcast to the batch shape "
            f"{tuple(batch)} of the input"
        )
    out = context.expand(*batch, c).reshape(-1, c)
    if out.shape[0] != n:
        raise ValueError(f"context gives {out.shape[0]} rows for {n} samples")
    return out


class LayerTransform(Transform):
    """A kexue layer (and its captured context) as a ``torch.distributions.Transform``.

    Arguments:
        layer: the :class:`FlowLayer`.
        context: conditioning tensor ``(*batch, C)`` or None; it broadcasts against the input's
            batch shape.
        event_dim: number of event dimensions (1 for vectors, 3 for images); default 1.

    References:
        zuko ``Transform.call_and_ladj``; PyTorch ``Transform``.
    """

    bijective = True

    def __init__(self, layer: FlowLayer, context: Tensor | None = None, event_dim: int = 1):
        super().__init__(cache_size=0)
        if not isinstance(layer, FlowLayer):
            raise ValueError(f"layer must be a FlowLayer, got {type(layer).__name__}")
        if event_dim < 1:
            raise ValueError(f"event_dim must be >= 1, got {event_dim}")
        self.layer, self.context, self._event_dim = layer, context, event_dim
        self.domain = constraints.independent(constraints.real, event_dim)
        self.codomain = constraints.independent(constraints.real, event_dim)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, LayerTransform)
            and other.layer is self.layer
            and other.context is self.context
        )

    def __hash__(self) -> int:
        return hash((id(self.layer), id(self.context)))

    def _run(self, x: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        flat, batch = _flatten(x, self._event_dim)
        ctx = _expand_context(self.context, batch, flat.shape[0])
        fn = self.layer.inverse if inverse else self.layer
        y, ld = fn(flat, ctx)
        return y.reshape(x.shape), ld.reshape(batch)

    def _call(self, x: Tensor) -> Tensor:
        return self._run(x, inverse=False)[0]

    def _inverse(self, y: Tensor) -> Tensor:
        return self._run(y, inverse=True)[0]

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        """kexue's per-sample logdet at x, shape = the batch shape (y is not used)."""
        return self._run(x, inverse=False)[1]

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(T(x), log|det J_T(x)|)`` from one kexue call."""
        return self._run(x, inverse=False)


def as_transform(
    layer: FlowLayer, context: Tensor | None = None, *, event_dim: int = 1
) -> LayerTransform:
    """``layer`` (with ``context``) as a ``torch.distributions.Transform``; see
    :class:`LayerTransform`."""
    return LayerTransform(layer, context, event_dim)


class _LazyLayer(nn.Module):
    """zuko's ``LazyTransform`` protocol: ``forward(c=None)`` returns a Transform."""

    def __init__(self, layer: FlowLayer, event_dim: int) -> None:
        super().__init__()
        self.layer, self.event_dim = layer, event_dim

    def forward(self, c: Tensor | None = None) -> LayerTransform:
        return LayerTransform(self.layer, c, self.event_dim)


def as_zuko(layer: FlowLayer, *, event_dim: int = 1) -> nn.Module:
    """A lazy module (zuko ``LazyTransform`` protocol) whose ``forward(c)`` builds the Transform.

    Arguments:
        layer: the kexue layer (its parameters are shared, so zuko code trains them).
        event_dim: 1 for vectors, 3 for images.

    References:
        zuko ``LazyTransform``.
    """
    return _LazyLayer(layer, event_dim)


class ZukoLayer(FlowLayer):
    """A zuko lazy transform (``forward(c)`` → ``torch.distributions.Transform``) as a kexue layer.

    ``forward(x, context)`` = ``lazy(context).call_and_ladj(x)``; ``inverse`` uses ``.inv``. The
    ladj must be per sample (zuko's transforms are event-dim 1 on vectors), shape ``(B,)``.

    Arguments:
        lazy: the zuko ``LazyTransform`` (its parameters become this layer's).

    References:
        zuko ``LazyTransform``, ``Transform.call_and_ladj``.
    """

    def __init__(self, lazy: nn.Module) -> None:
        super().__init__()
        if not isinstance(lazy, nn.Module):
            raise ValueError(f"lazy must be an nn.Module, got {type(lazy).__name__}")
        self.lazy = lazy

    def _run(self, x: Tensor, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        t = self.lazy(context) if context is not None else self.lazy()
        t = t.inv if inverse else t
        if hasattr(t, "call_and_ladj"):
            y, ladj = t.call_and_ladj(x)
        else:
            y = t(x)
            ladj = t.log_abs_det_jacobian(x, y)
        if ladj.shape != x.shape[:1]:
            raise ValueError(
                f"the zuko transform's ladj must be per sample {tuple(x.shape[:1])}, got "
                f"{tuple(ladj.shape)}"
            )
        return y, ladj

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``lazy(context)(x)`` and its per-sample ladj."""
        return self._run(x, context, inverse=False)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``lazy(context).inv(y)`` and its per-sample ladj."""
        return self._run(y, context, inverse=True)


def from_zuko(lazy: nn.Module) -> ZukoLayer:
    """A zuko lazy transform as a kexue :class:`FlowLayer`; see :class:`ZukoLayer`."""
    return ZukoLayer(lazy)


class FlowDistribution(Distribution):
    """A kexue :class:`Flow` (with a captured context) as a ``torch.distributions`` object.

    ``batch_shape`` is ``context.shape[:-1]`` (``()`` without context) and ``event_shape`` the
    prior's shape; ``log_prob(x)`` takes ``x`` of shape ``sample_shape + batch_shape +
    event_shape``; ``rsample(sample_shape)`` returns that shape and is pathwise in the flow's
    parameters (``has_rsample`` follows the prior, False for a mixture with trainable weights).

    Arguments:
        flow: a :class:`Flow` (single latent; ``MultiScaleFlow`` has a list of latents).
        context: conditioning ``(*batch, C)`` or None.

    References:
        zuko ``NormalizingFlow`` and ``Flow``; PyTorch ``Distribution``.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {}

    def __init__(self, flow: Flow, context: Tensor | None = None) -> None:
        if not isinstance(flow, Flow):
            raise ValueError(f"flow must be a kexue Flow, got {type(flow).__name__}")
        shape = getattr(flow.prior, "shape", None)
        if shape is None:
            raise ValueError("flow.prior must have a `shape` (its event shape)")
        self.flow, self.context = flow, context
        batch = Size(()) if context is None else context.shape[:-1]
        super().__init__(batch, Size(shape), validate_args=False)

    @property
    def support(self) -> constraints.Constraint:  # type: ignore[override]
        return constraints.independent(constraints.real, len(self.event_shape))

    @property
    def has_rsample(self) -> bool:  # type: ignore[override]
        return bool(getattr(self.flow.prior, "has_rsample", True))

    def _rows(self, sample_shape: Size) -> tuple[int, Tensor | None]:
        n = max(math.prod(sample_shape) * math.prod(self.batch_shape), 1)
        ctx = _expand_context(self.context, Size(sample_shape) + self.batch_shape, n)
        return n, ctx

    def log_prob(self, value: Tensor) -> Tensor:
        """``log p(x)`` with shape ``value.shape[:-event_dim]``."""
        flat, batch = _flatten(value, len(self.event_shape))
        ctx = _expand_context(self.context, batch, flat.shape[0])
        return self.flow.log_prob(flat, ctx).reshape(batch)

    def rsample(self, sample_shape: Sequence[int] | Size = ()) -> Tensor:
        """Pathwise sample of shape ``sample_shape + batch_shape + event_shape``."""
        if not self.has_rsample:
            raise NotImplementedError(
                "this flow's prior is not reparametrisable (a mixture with trainable weights)"
            )
        return self._draw(Size(sample_shape))

    def _draw(self, sample_shape: Size) -> Tensor:
        n, ctx = self._rows(sample_shape)
        x = self.flow.sample(n, context=ctx)
        return x.reshape(sample_shape + self.batch_shape + self.event_shape)

    def sample(self, sample_shape: Sequence[int] | Size = ()) -> Tensor:
        """A sample without gradients, shape ``sample_shape + batch_shape + event_shape``."""
        with torch.no_grad():
            return self._draw(Size(sample_shape))

    def rsample_and_log_prob(
        self, sample_shape: Sequence[int] | Size = ()
    ) -> tuple[Tensor, Tensor]:
        """``(x, log p(x))`` from one pass through the inverse (zuko PR #19)."""
        shape = Size(sample_shape)
        n, ctx = self._rows(shape)
        prior = self.flow.prior
        z = prior.sample(n, context=ctx) if not self.has_rsample else _prior_rsample(prior, n, ctx)
        x, ld_inv = self.flow.inverse(z, ctx)
        log_p = prior.log_prob(z, ctx) - ld_inv
        out = shape + self.batch_shape
        return x.reshape(out + self.event_shape), log_p.reshape(out)


def _prior_rsample(prior: nn.Module, n: int, ctx: Tensor | None) -> Tensor:
    rs = getattr(prior, "rsample", None)
    return rs(n, context=ctx) if rs is not None else prior.sample(n, context=ctx)


def as_torch_distribution(flow: Flow, context: Tensor | None = None) -> FlowDistribution:
    """``flow`` (with ``context``) as a ``torch.distributions.Distribution``; see
    :class:`FlowDistribution`."""
    return FlowDistribution(flow, context)
