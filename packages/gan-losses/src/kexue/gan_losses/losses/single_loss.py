"""The single-loss GAN: D and G trained by one loss and one optimiser (post 6387).

The identity behind it: for a deterministic D,

.. math:: h(D(x_f)) - h(D(\\mathrm{sg}\\,x_f))

has value 0, zero gradient w.r.t. D's parameters, and the same gradient w.r.t. G's parameters as
``h(D(x_f))``. Adding it to the D loss (computed on ``sg x_f``) gives one scalar whose gradient is
``∇_D L_D`` on D and ``∇_G L_G`` on G, exactly the gradients of the two-optimiser scheme.

Corrections to the post (derived from the update rules):

- the update is **simultaneous** (Jacobi: D and G move from the same point), not alternating
  (Gauss–Seidel) as the post's "equivalent to 1:1 alternating training" suggests;
- the post reads the weight λ of the G term as a 1:λ D:G learning-rate ratio. That holds for SGD
  only: Adam and RMSprop divide by the running gradient scale, so multiplying G's loss by λ leaves
  G's step unchanged (up to their eps). For TTUR use two parameter groups with their own lr.

Exact cancellation needs ``D(x_f)`` and ``D(sg x_f)`` computed by the *same* function. Three ways
of running the two forwards (``method``), and which stateful layers each keeps exact:

- ``"replay"`` (default): two forwards. The detached one runs on clones of every buffer of D
  (SN ``u``/``v``, BN running stats); then the original buffers and the CPU/CUDA RNG states are
  restored and the attached forward runs. Exact for spectral norm, batch norm and dropout drawn
  from the global RNG; buffers are updated once, as by one plain forward.
- ``"concat"``: one forward on ``cat([sg x_f, x_f])``, split. Exact for spectral norm (one power
  iteration). **Not** exact for batch norm: a duplicated batch keeps BN's mean and biased
  variance, but the detached half's outputs depend on the attached half through the batch
  statistics, which sends a spurious gradient into G. Not exact for dropout either (independent
  masks per sample).
- ``"separate"``: two plain forwards. Exact for batch norm (each forward normalises its own,
  identical batch). **Not** exact for spectral norm (the power iteration moves ``u`` between the
  forwards, the two σ differ and the trick term leaks a gradient into D) nor for dropout.

``replay`` does not restore state held outside buffers and the global RNG (python attributes, a
layer's own ``torch.Generator``). Under DDP with ``broadcast_buffers=True`` the broadcast at the
start of each forward can give the two forwards different buffers on ranks other than 0: use
``broadcast_buffers=False`` there, or ``"concat"`` for a D without batch norm.

References:
    https://kexue.fm/archives/6387; ``bojone/gan`` ``gan_one_step_with_hinge_loss.py`` (d4010d1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from .._validation import check_batched, check_tensor

__all__ = [
    "SingleLoss",
    "SingleLossMethod",
    "forward_detached_and_attached",
    "single_loss",
]

SingleLossMethod = Literal["replay", "concat", "separate"]
_METHODS = ("replay", "concat", "separate")


def _swap_in_buffer_copies(
    network: Callable[[Tensor], Tensor],
) -> list[tuple[nn.Module, str, Tensor]]:
    """Replace every buffer of ``network`` by a clone; return the originals for :func:`_restore`.

    The detached forward then updates (and autograd saves) the clones, while the original
    buffers stay untouched for the attached forward. Restoring by copying values back in place
    would break autograd: batch norm saves its running statistics for backward.
    """
    if not isinstance(network, nn.Module):
        return []
    originals = []
    for module in network.modules():
        for name, buf in module._buffers.items():
            if buf is not None:
                originals.append((module, name, buf))
    for module, name, buf in originals:
        module._buffers[name] = buf.clone()
    return originals


def _restore(originals: list[tuple[nn.Module, str, Tensor]]) -> None:
    for module, name, buf in originals:
        module._buffers[name] = buf


def _rng_devices(x: Tensor) -> list[int]:
    return [x.device.index or 0] if x.device.type == "cuda" else []


def forward_detached_and_attached(
    network: Callable[[Tensor], Tensor], x: Tensor, *, method: SingleLossMethod = "replay"
) -> tuple[Tensor, Tensor]:
    """Run ``network`` on ``x.detach()`` and on ``x``, in the same state; return both outputs.

    ``out_detached = network(sg x)`` carries gradient to the network's parameters only;
    ``out_attached = network(x)`` also to whatever produced ``x``. Their values are equal, and so
    are their gradients w.r.t. the network's parameters, for every ``method`` on a deterministic,
    stateless network; the module docstring's table says which method stays exact with spectral
    norm, batch norm and dropout.

    Arguments:
        network: a callable (usually an ``nn.Module``) mapping ``(B, ...)`` to ``(B, ...)``.
        x: the input with its graph, ``(B, ...)``, e.g. ``G(z)``.
        method: ``"replay"`` (default; buffers and RNG restored between two forwards),
            ``"concat"`` (one forward on ``cat([x.detach(), x])``, split), ``"separate"``.

    Returns:
        ``(out_detached, out_attached)``.

    References:
        https://kexue.fm/archives/6387.
    """
    x = check_batched(x, "x", min_dim=1)
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if method == "concat":
        out = check_tensor(network(torch.cat([x.detach(), x], dim=0)), "network output")
        if out.dim() == 0 or out.shape[0] != 2 * x.shape[0]:
            raise ValueError(
                f"method='concat' needs a network that keeps the batch dim: input batch "
                f"{2 * x.shape[0]}, output shape {tuple(out.shape)}"
            )
        return out[: x.shape[0]], out[x.shape[0] :]
    if method == "separate":
        return network(x.detach()), network(x)
    devices = _rng_devices(x)
    cpu_state = torch.get_rng_state()
    cuda_states = [torch.cuda.get_rng_state(d) for d in devices]
    originals = _swap_in_buffer_copies(network)
    try:
        out_detached = network(x.detach())
    finally:
        _restore(originals)
        torch.set_rng_state(cpu_state)
        for d, state in zip(devices, cuda_states):
            torch.cuda.set_rng_state(state, d)
    out_attached = network(x)
    return out_detached, out_attached


class SingleLoss(NamedTuple):
    """Result of :func:`single_loss`.

    ``loss``: backward this and step one optimiser over D ∪ G. ``discriminator_loss`` and
    ``generator_loss`` are detached values for logging (``loss`` equals ``discriminator_loss``
    in value: the G term is exactly 0).
    """

    loss: Tensor
    discriminator_loss: Tensor
    generator_loss: Tensor


def single_loss(
    discriminator: Callable[[Tensor], Tensor],
    real_scores: Tensor,
    x_fake: Tensor,
    *,
    d_loss_fn: Callable[[Tensor, Tensor], Tensor],
    g_loss_fn: Callable[[Tensor, Tensor], Tensor],
    generator_weight: float = 1.0,
    method: SingleLossMethod = "replay",
) -> SingleLoss:
    """Combine a D loss and a G loss into one scalar trainable by one optimiser, exactly.

    .. math:: L = L_D(r, D(\\mathrm{sg}\\,x_f))
        + λ\\,[L_G(r, D(x_f)) - L_G(r, D(\\mathrm{sg}\\,x_f))]

    Value: ``L_D``. Gradient on D: ``∇_D L_D`` (the bracket cancels on D, including through
    ``r``). Gradient on G: ``λ ∇_G L_G``. Under SGD this is the simultaneous two-optimiser step
    with lr_G = λ·lr_D; under Adam/RMSprop λ is (nearly) irrelevant, use parameter groups instead.

    Example (the author's hinge in the canonical sign)::

        x_fake = G(z)
        out = single_loss(D, D(x_real), x_fake,
                          d_loss_fn=hinge_discriminator_loss,
                          g_loss_fn=lambda r, f: hinge_generator_loss(f))
        out.loss.backward(); opt.step()   # opt over D and G parameters

    Arguments:
        discriminator: D, ``(B, ...) -> (B,)`` or ``(B, 1)``.
        real_scores: ``D(x_real)`` from the caller's forward.
        x_fake: ``G(z)`` with the generator's graph attached.
        d_loss_fn: ``(real_scores, fake_scores) -> scalar``, called with the scores of
            ``sg x_f``.
        g_loss_fn: ``(real_scores, fake_scores) -> scalar``; non-relativistic losses ignore the
            first argument.
        generator_weight: λ (the author's script uses 1).
        method: see :func:`forward_detached_and_attached` (default ``"replay"``).

    Returns:
        :class:`SingleLoss`.

    References:
        https://kexue.fm/archives/6387; ``gan_one_step_with_hinge_loss.py``.
    """
    check_tensor(real_scores, "real_scores")
    check_tensor(x_fake, "x_fake")
    if not generator_weight >= 0:
        raise ValueError(f"generator_weight must be >= 0, got {generator_weight}")
    fake_sg, fake = forward_detached_and_attached(discriminator, x_fake, method=method)
    d_loss = d_loss_fn(real_scores, fake_sg)
    g_loss = g_loss_fn(real_scores, fake)
    g_loss_sg = g_loss_fn(real_scores, fake_sg)
    for name, value in (("d_loss_fn", d_loss), ("g_loss_fn", g_loss)):
        if not isinstance(value, Tensor) or value.dim() != 0:
            raise ValueError(f"{name} must return a scalar tensor, got {value!r:.80}")
    loss = d_loss + generator_weight * (g_loss - g_loss_sg)
    return SingleLoss(loss=loss, discriminator_loss=d_loss.detach(), generator_loss=g_loss.detach())
