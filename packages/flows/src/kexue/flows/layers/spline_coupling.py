"""Rational-quadratic spline coupling (NSF coupling, spec flows-splines §3.1).

``y_a = x_a``, ``y_b = RQS(x_b; θ(x_a[, context]))`` elementwise, with the splits of the affine
coupling (``channel``, ``parity``, ``checkerboard``, ``mask``; vectors and images). The net emits
``P = 3K − 1`` raw values per transformed element (K bins, linear tails), **feature-major**:
element (channel) c of x_b owns the net's output channels ``c·P … c·P + P − 1``, so its spline
parameters are contiguous (the nflows / zuko layout). With a zero-initialised last layer
(``MLP(zero_init=True)``, ``ConvNet``'s ``Conv2dZeros``) the layer is the identity at init.
``unconditional=True`` also sends the kept part through a learned unconditional spline,
``y_a = RQS(x_a; φ)`` (nflows' ``apply_unconditional_transform``, spec §3.1), while the net
still reads the untransformed x_a.

References:
    - Durkan, Bekasov, Murray, Papamakarios, Neural Spline Flows, arXiv:1906.04032 §3.
    - Dinh et al., RealNVP, arXiv:1605.08803 (masks); https://kexue.fm/archives/5807.
    - nflows ``PiecewiseRationalQuadraticCouplingTransform``; zuko ``NSF``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from kexue.flows.base import logdet_dtype
from kexue.flows.layers.coupling import _Coupling
from kexue.flows.layers.elementwise import apply_transformer, check_transformer
from kexue.flows.splines import RQSpline

__all__ = ["SplineCoupling"]


class SplineCoupling(_Coupling):
    """Coupling with a rational-quadratic spline on the transformed part.

    Arguments:
        net: maps the kept part (and ``context`` as ``net(x_a, context)``) to ``(3K − 1)·|b|``
            raw values: ``(B, (3K − 1)·C_b, *)`` for the channel/parity splits and
            ``(B, (3K − 1)·C, H, W)`` (full size; the transformed positions are used) for the
            checkerboard/mask splits. Zero-initialise its last layer for an identity start.
        bins: K; default 8 [zuko ``NSF``].
        bound: the spline acts on [−B, B], identity outside; default 5.0 [zuko]. Standardise
            data first (an ``ActNorm`` or a logit layer before the first coupling).
        param: spline parametrisation: ``"nflows"`` (default, identity at zero parameters) or
            ``"zuko"`` (parity with zuko's ``MonotonicRQSTransform``).
        split: ``"channel"`` (default), ``"parity"``, ``"checkerboard"`` or ``"mask"``.
        parity: 0 or 1, which part is kept; alternate it between layers.
        mask: kept-positions mask (1 = kept) for ``split="mask"``.
        unconditional: also transform the kept part x_a by an unconditional spline with learned
            per-channel raw values (zero at init: the identity), as nflows'
            ``apply_unconditional_transform`` (used in the NSF UCI runs); the net conditions on
            the input x_a, so the inverse undoes this spline first. Needs ``features`` and a
            ``"channel"`` or ``"parity"`` split; default False.
        features: size of dim 1 of the input; required with ``unconditional=True``.

    Returns:
        (from ``forward``) ``(y, logdet)`` with logdet (B,) = Σ_b log RQS'(x_b)
        (+ Σ_a log RQS_φ'(x_a) when ``unconditional``).

    References:
        Durkan et al., Neural Spline Flows, arXiv:1906.04032.
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        bins: int = 8,
        bound: float = 5.0,
        param: str = "nflows",
        split: str = "channel",
        parity: int = 0,
        mask: Tensor | None = None,
        unconditional: bool = False,
        features: int | None = None,
    ) -> None:
        super().__init__(
            net, split=split, parity=parity, mask=mask, backend="auto", deterministic=True
        )
        check_transformer("spline", bins, bound)
        self.bins = bins
        self.bound = float(bound)
        self.param = param
        self.identity_spline: RQSpline | None = None
        if unconditional:
            if split not in ("channel", "parity"):
                raise ValueError(
                    f"unconditional=True needs split='channel' or 'parity', got {split!r}"
                )
            if features is None or features < 2:
                raise ValueError(f"features (dim 1 of x, >= 2) is required, got {features}")
            kept = self._split(torch.empty(1, features))[0].shape[1]
            self.identity_spline = RQSpline(
                kept,
                bins=bins,
                bound=bound,
                param=param,  # type: ignore[arg-type]
            )

    def _spline_params(self, x: Tensor, x_b: Tensor, h: Tensor, idx: Tensor | None) -> Tensor:
        """Net output → ``x_b.shape + (P,)`` (feature-major per element)."""
        p = 3 * self.bins - 1
        ref = x_b if idx is None else x
        want = (ref.shape[0], p * ref.shape[1], *ref.shape[2:])
        if tuple(h.shape) != want:
            raise ValueError(
                f"net output must have shape {want} for input of shape {tuple(x.shape)}, "
                f"split={self.split!r} and bins={self.bins}, got {tuple(h.shape)}"
            )
        params = h.view(ref.shape[0], ref.shape[1], p, *ref.shape[2:]).movedim(2, -1)
        if idx is None:
            return params
        return params.reshape(x.shape[0], -1, p).index_select(1, idx)

    def _couple(self, x: Tensor, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        name = "y" if inverse else "x"
        self._check(x, context, name)
        if self.split == "channel" and x.shape[1] < 2:
            raise ValueError(f"{name} needs dim 1 >= 2 for a coupling, got {tuple(x.shape)}")
        x_a, x_b, idx = self._split(x)
        kept, ld_a = (x_a if idx is None else x), None
        if self.identity_spline is not None:  # y_a = φ(x_a); the net reads x_a
            if inverse:
                x_a, ld_a = self.identity_spline.inverse(x_a)
                kept = x_a
            else:
                kept, ld_a = self.identity_spline(x_a)
        h = self._run_net(x_a, context)
        params = self._spline_params(x, x_b, h, idx)
        y_b, ladj = apply_transformer(
            "spline",
            x_b,
            params,
            inverse=inverse,
            bins=self.bins,
            bound=self.bound,
            param=self.param,
        )
        logdet = ladj.to(logdet_dtype(x)).reshape(x.shape[0], -1).sum(dim=1)
        if ld_a is not None:
            logdet = logdet + ld_a.to(logdet.dtype)
        return self._merge(x, kept, y_b.to(x.dtype), idx), logdet
