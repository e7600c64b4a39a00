"""GLO → IMLE → GLANN (post 6394): a generator trained without an adversary.

1. **GLO** learns a code per training image jointly with the generator G, under a pluggable
   distance (Lap1 by default; a perceptual distance over a frozen feature net in GLANN), codes
   projected to the unit sphere (or ball) after every step.
2. **IMLE** fits a mapper T: noise → code space so that every GLO code has a nearby T(e) (each
   code pulls its nearest sample in a pool; ``kexue.gan_losses.imle_loss``); l2 is fine there.
3. **GLANN** samples x = G(project(T(e))).

GLO alone samples by fitting a full-covariance Gaussian to the codes (GLANN's code).

References:
    https://kexue.fm/archives/6394; Bojanowski et al., arXiv:1707.05776; Li & Malik,
    arXiv:1809.09087; Hoshen et al., arXiv:1812.08985 (``yedidh/glann``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from kexue.gan_losses import imle_loss

from ._validation import check_choice, check_int
from .glo import lap1_loss, project_codes
from .nets import MLP

__all__ = ["GLANN", "GLO", "digits_generator"]

Distance = Callable[[Tensor, Tensor], Tensor]


class _Sigmoid(nn.Module):
    def __init__(self, net: nn.Module, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.net, self.shape = net, shape

    def forward(self, z: Tensor) -> Tensor:
        return torch.sigmoid(self.net(z)).reshape(z.shape[0], *self.shape)


def digits_generator(nz: int = 32, hidden: Sequence[int] = (256, 256)) -> nn.Module:
    """MLP generator nz → hidden → 64, sigmoid, reshaped to ``(B, 1, 8, 8)``."""
    return _Sigmoid(MLP([nz, *hidden, 64], nn.LeakyReLU, flatten=False), (1, 8, 8))


def _lap1(x: Tensor, y: Tensor) -> Tensor:
    return lap1_loss(x, y, reduction="none")


class GLO(nn.Module):
    """Generative Latent Optimisation: a code table trained jointly with a generator.

    Arguments:
        generator: G, ``(B, nz)`` → images.
        n: number of training images (rows of the code table).
        nz: code dimension.
        projection: "sphere" (default, GLANN) or "ball" (minimal_glo), applied by :meth:`project_`.
        distance: per-sample ``(x̂, x) → (B,)``; default Lap1 (:func:`kexue.vae.lap1_loss`).
        init_std: codes start N(0, init_std²) then projected (GLANN code: 0.01).
        generator_rng: for the code initialisation.
    """

    def __init__(
        self,
        generator: nn.Module,
        n: int,
        nz: int,
        *,
        projection: str = "sphere",
        distance: Distance | None = None,
        init_std: float = 0.01,
        generator_rng: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_choice(projection, "projection", ("sphere", "ball"))
        self.generator = generator
        self.nz = check_int(nz, "nz")
        self.projection = projection
        self.distance: Distance = distance or _lap1
        codes = torch.randn(check_int(n, "n"), nz, generator=generator_rng) * init_std
        self.codes = nn.Parameter(project_codes(codes, projection))

    def loss(self, x: Tensor, index: Tensor) -> Tensor:
        """Mean distance between G(codes[index]) and the images ``x`` (rows ``index``)."""
        return self.distance(self.generator(self.codes[index]), x).mean()

    @torch.no_grad()
    def project_(self) -> None:
        """Project every code onto the sphere / into the ball (call after each optimiser step)."""
        self.codes.copy_(project_codes(self.codes, self.projection))

    @torch.no_grad()
    def reconstruct(self, index: Tensor) -> Tensor:
        return self.generator(self.codes[index])

    @torch.no_grad()
    def sample_gaussian(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """GLO-only sampling: a full-covariance Gaussian fitted to the codes, projected, decoded."""
        c = self.codes.double()
        mean = c.mean(0)
        cov = torch.cov(c.T) + 1e-6 * torch.eye(self.nz, dtype=c.dtype)
        chol = torch.linalg.cholesky(cov)
        e = torch.randn(n, self.nz, generator=generator, dtype=c.dtype)
        z = project_codes((mean + e @ chol.T).to(self.codes.dtype), self.projection)
        return self.generator(z)


class GLANN(nn.Module):
    """GLANN: an IMLE mapper T from noise to a trained GLO's code space; samples G(T(e)).

    Arguments:
        glo: a trained :class:`GLO` (its generator and codes are used, not changed).
        noise_dim: dimension of e ~ N(0, I), default = ``glo.nz``.
        hidden: MLP widths of T, default (256, 256).
    """

    def __init__(
        self, glo: GLO, noise_dim: int | None = None, hidden: Sequence[int] = (256, 256)
    ) -> None:
        super().__init__()
        self.glo = glo
        self.noise_dim = check_int(noise_dim or glo.nz, "noise_dim")
        self.mapper = MLP([self.noise_dim, *hidden, glo.nz], flatten=False)

    def _noise(self, n: int, generator: torch.Generator | None) -> Tensor:
        p = self.glo.codes
        return torch.randn(n, self.noise_dim, generator=generator, dtype=p.dtype).to(p.device)

    def mapped(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """T(e) projected like the codes, ``(n, nz)``."""
        return project_codes(self.mapper(self._noise(n, generator)), self.glo.projection)

    def imle_loss(
        self, codes: Tensor, *, pool: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """IMLE loss of a batch of GLO codes against a pool of ``pool`` mapped samples
        (``kexue.gan_losses.imle_loss``: each code pulls its nearest sample)."""
        return imle_loss(codes.detach(), self.mapped(check_int(pool, "pool"), generator=generator))

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """x = G(project(T(e))), ``(n, ...)``."""
        return self.glo.generator(self.mapped(n, generator=generator))
