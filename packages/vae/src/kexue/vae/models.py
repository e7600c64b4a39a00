"""VAE models: ``GaussianVAE`` (three decoders) and the one-step ``ClusteringVAE`` (post 5887).

Both take image batches ``(B, *data_shape)`` in [0, 1] and build MLPs by default (8×8 digits);
pass your own ``encoder`` (x → ``(B, 2·latent)``) and ``decoder`` (z → ``(B, D)`` or
``(B, *data_shape)``; twice that for ``"gaussian_z"``) for other data, or use
``ClusteringVAE.from_preset("author_mnist")`` for the author's conv nets.

References:
    https://kexue.fm/archives/5343, 5383, 5887; Kingma & Welling, arXiv:1312.6114.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._validation import check_choice, check_int, check_positive
from .cluster_loss import cluster_kl_matrix, cluster_vae_loss
from .elbo import bernoulli_nll, gaussian_kl, gaussian_kl_sampled, gaussian_nll, reparameterize
from .likelihood import log_likelihood_is
from .nets import MLP, author_conv_decoder, author_conv_encoder

__all__ = ["PRESETS", "ClusterPreset", "ClusteringVAE", "GaussianVAE"]

DECODERS = ("gaussian_learned", "gaussian_fixed", "gaussian_z", "bernoulli")
MIN_LOGVAR = math.log(1e-4)  # decoder log-variance floor (spec §2.1)


def _numel(shape: Sequence[int]) -> int:
    return int(math.prod(shape))


class GaussianVAE(nn.Module):
    """VAE with a diagonal Gaussian encoder and a Gaussian or Bernoulli decoder.

    Decoders (``decoder=``):
        - ``"gaussian_learned"`` (default): sigmoid mean, one free log-variance per pixel,
          clamped at ``min_logvar`` (log 1e-4);
        - ``"gaussian_fixed"``: s² = 1/λ (``lam``; the author's reconstruction weight);
        - ``"gaussian_z"``: a z-dependent log-variance head (clamped the same way);
        - ``"bernoulli"``: logits (a likelihood for binary data only).

    Arguments:
        data_shape: per-sample shape, default (1, 8, 8).
        latent: d, default 16.
        hidden: MLP widths of encoder and (mirrored) decoder, default (256, 256).
        decoder: one of the above.
        lam: λ for ``"gaussian_fixed"`` (default 5: s ≈ 0.447).
        min_logvar: decoder log-variance floor.
        init_logvar: initial per-pixel log-variance of ``"gaussian_learned"``, default −3
            (s² ≈ 0.05). Starting at 0 (s² = 1) makes the reconstruction term weak at first and
            the posterior collapses: on digits 4 active dims and 3.36 bpd after 4000 steps,
            against 14 and 2.76 from −3 (IWAE-100, packages/vae/BENCHMARKS.md).
        encoder, decoder_net: custom networks replacing the MLPs.

    References:
        https://kexue.fm/archives/5343 (λ = 1/s²), https://kexue.fm/archives/5383.
    """

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 8, 8),
        latent: int = 16,
        hidden: Sequence[int] = (256, 256),
        *,
        decoder: str = "gaussian_learned",
        lam: float = 5.0,
        min_logvar: float = MIN_LOGVAR,
        init_logvar: float = -3.0,
        encoder: nn.Module | None = None,
        decoder_net: nn.Module | None = None,
    ) -> None:
        super().__init__()
        check_choice(decoder, "decoder", DECODERS)
        self.data_shape = tuple(int(s) for s in data_shape)
        self.latent = check_int(latent, "latent")
        self.kind = decoder
        self.lam = check_positive(lam, "lam")
        self.min_logvar = float(min_logvar)
        d = _numel(self.data_shape)
        out = 2 * d if decoder == "gaussian_z" else d
        self.encoder = encoder or MLP([d, *hidden, 2 * self.latent])
        self.decoder = decoder_net or MLP([self.latent, *hidden[::-1], out])
        self.pixel_logvar = None
        if decoder == "gaussian_learned":
            self.pixel_logvar = nn.Parameter(torch.full(self.data_shape, float(init_logvar)))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """q(z|x): ``(μ, log σ²)``, each ``(B, latent)``."""
        h = self.encoder(x).reshape(x.shape[0], 2, self.latent)
        return h[:, 0], h[:, 1]

    def decode(self, z: Tensor) -> tuple[Tensor, Tensor | None]:
        """p(x|z): ``(mean or logits, log-variance or None)`` of shape ``(B, *data_shape)``."""
        h = self.decoder(z)
        if self.kind == "gaussian_z":
            h = h.reshape(z.shape[0], 2, *self.data_shape)
            return torch.sigmoid(h[:, 0]), h[:, 1].clamp_min(self.min_logvar)
        h = h.reshape(z.shape[0], *self.data_shape)
        if self.kind == "bernoulli":
            return h, None
        if self.kind == "gaussian_fixed":
            return torch.sigmoid(h), None
        assert self.pixel_logvar is not None
        return torch.sigmoid(h), self.pixel_logvar.clamp_min(self.min_logvar)

    def log_px_z(self, x: Tensor, z: Tensor) -> Tensor:
        """Per-sample log p(x|z), ``(B,)``."""
        out, logvar = self.decode(z)
        if self.kind == "bernoulli":
            return -bernoulli_nll(x, out, reduction="none")
        if self.kind == "gaussian_fixed":
            return -gaussian_nll(x, out, lam=self.lam, reduction="none")
        return -gaussian_nll(x, out, logvar, reduction="none")

    def elbo(
        self, x: Tensor, *, kl: str = "analytic", generator: torch.Generator | None = None
    ) -> Tensor:
        """Per-sample ELBO (nats) at one reparameterised z; ``kl`` "analytic" or "sampled"."""
        check_choice(kl, "kl", ("analytic", "sampled"))
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, generator=generator)
        if kl == "analytic":
            k = gaussian_kl(mu, logvar, reduction="none")
        else:
            k = gaussian_kl_sampled(z, mu, logvar, reduction="none")
        return self.log_px_z(x, z) - k

    def loss(
        self, x: Tensor, *, kl: str = "analytic", generator: torch.Generator | None = None
    ) -> Tensor:
        """Negative ELBO, batch mean (the author's shape: summed over pixels)."""
        return -self.elbo(x, kl=kl, generator=generator).mean()

    def log_likelihood(
        self,
        x: Tensor,
        *,
        k: int = 1000,
        chunk: int = 100,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """IWAE-k lower bound on log p(x) per sample (float64), see :func:`log_likelihood_is`."""
        return log_likelihood_is(
            x, self.encode, self.log_px_z, k=k, chunk=chunk, generator=generator
        )

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Decoder means (probabilities for Bernoulli) at z ~ N(0, I), ``(n, *data_shape)``."""
        p = next(self.parameters())
        z = torch.randn(n, self.latent, generator=generator, dtype=p.dtype, device=p.device)
        out, _ = self.decode(z)
        return torch.sigmoid(out) if self.kind == "bernoulli" else out


@dataclass(frozen=True)
class ClusterPreset:
    """Sizes and training settings of a clustering-VAE preset (spec §2.4, §5.2)."""

    data_shape: tuple[int, ...]
    clusters: int
    latent: int
    lam: float
    kl: str
    arch: str  # "mlp" or "author_conv"
    hidden: tuple[int, ...] = (256, 256)
    classifier_hidden: int = 256
    batch: int = 100
    lr: float = 1e-3
    note: str = ""


PRESETS: dict[str, ClusterPreset] = {
    "author_mnist": ClusterPreset(
        (1, 28, 28), 10, 20, 5.0, "analytic", "author_conv", batch=100, lr=1e-3,
        note="vae_keras_cluster.py c3da14e: MNIST, 50 epochs; λ = 5 collapses on 8×8 digits "
        "(≈ 7 of 10 clusters used, ACC ≈ 0.23, spec §2.4): λ must scale with D",
    ),
    "digits": ClusterPreset(
        (1, 8, 8), 10, 10, 60.0, "analytic", "mlp", (256, 256),
        note="8×8 digits: MLP 64-256-256, d = 10, λ = 60 ≈ 5·784/64 (spec §5.2)",
    ),
}  # fmt: skip


class ClusteringVAE(nn.Module):
    """The one-step clustering VAE of post 5887: encoder, classifier c(y|z), class means μ_y, decoder.

    Loss per x at one reparameterised z (see :func:`kexue.vae.cluster_vae_loss`):
    λ·½‖x − G(z)‖² + Σ_y c_y(z)·KL(q(z|x) ‖ N(μ_y, I)) + Σ_y c_y log c_y. The class means are a
    learned ``(K, latent)`` parameter initialised to zeros (the author's choice); clustering uses
    the classifier at the encoder mean, conditional generation decodes z = μ_y + ε.

    Arguments:
        data_shape: per-sample shape, default (1, 8, 8).
        clusters: K, default 10.
        latent: d, default 10.
        hidden: encoder / decoder MLP widths, default (256, 256).
        lam: λ (inverse decoder variance), default 60 (8×8 digits; the author's MNIST value is 5).
        kl: "analytic" (default) or "sampled" KL_y.
        posterior: "classifier" (the post: a softmax net on the sampled z) or "optimal"
            (no classifier: c = softmax(−KL_y), VaDE's responsibility with unit variances).
        classifier_hidden: width of the classifier's hidden layer (256).
        prior_term: keep Σ c log c (default True).
        balance: weight β of a batch-level term β·KL(c̄ ‖ uniform), c̄ the batch mean of c(y|z)
            (default 0 = the post's loss). Not in the post: its per-sample prior term leaves the
            cluster sizes free, so clusters can merge or die; this term keeps them in use.
        encoder, decoder_net, classifier: custom networks replacing the MLPs.

    References:
        https://kexue.fm/archives/5887; ``bojone/vae`` ``vae_keras_cluster.py``.
    """

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 8, 8),
        clusters: int = 10,
        latent: int = 10,
        hidden: Sequence[int] = (256, 256),
        *,
        lam: float = 60.0,
        kl: str = "analytic",
        posterior: str = "classifier",
        classifier_hidden: int = 256,
        prior_term: bool = True,
        balance: float = 0.0,
        encoder: nn.Module | None = None,
        decoder_net: nn.Module | None = None,
        classifier: nn.Module | None = None,
    ) -> None:
        super().__init__()
        check_choice(kl, "kl", ("analytic", "sampled"))
        check_choice(posterior, "posterior", ("classifier", "optimal"))
        self.data_shape = tuple(int(s) for s in data_shape)
        self.clusters = check_int(clusters, "clusters")
        self.latent = check_int(latent, "latent")
        self.lam = check_positive(lam, "lam")
        self.kl, self.posterior, self.prior_term = kl, posterior, bool(prior_term)
        self.balance = check_positive(balance, "balance", allow_zero=True)
        d = _numel(self.data_shape)
        self.encoder = encoder or MLP([d, *hidden, 2 * self.latent])
        self.decoder = decoder_net or MLP([self.latent, *hidden[::-1], d])
        self.classifier = None
        if posterior == "classifier":
            self.classifier = classifier or MLP(
                [self.latent, classifier_hidden, self.clusters], flatten=False
            )
        self.means = nn.Parameter(torch.zeros(self.clusters, self.latent))

    @classmethod
    def from_preset(cls, name: str, **overrides: object) -> ClusteringVAE:
        """Build a model from :data:`PRESETS` (``"author_mnist"`` or ``"digits"``)."""
        check_choice(name, "name", tuple(PRESETS))
        p = PRESETS[name]
        kw: dict[str, object] = dict(
            data_shape=p.data_shape, clusters=p.clusters, latent=p.latent, hidden=p.hidden,
            lam=p.lam, kl=p.kl, classifier_hidden=p.classifier_hidden,
        )  # fmt: skip
        if p.arch == "author_conv":
            kw["encoder"] = author_conv_encoder(2 * p.latent)
            kw["decoder_net"] = author_conv_decoder(p.latent)
        kw.update(overrides)
        return cls(**kw)  # type: ignore[arg-type]

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """q(z|x): ``(μ, log σ²)``, each ``(B, latent)``."""
        h = self.encoder(x).reshape(x.shape[0], 2, self.latent)
        return h[:, 0], h[:, 1]

    def decode(self, z: Tensor) -> Tensor:
        """Decoder mean G(z) = sigmoid(net(z)), ``(B, *data_shape)``."""
        return torch.sigmoid(self.decoder(z).reshape(z.shape[0], *self.data_shape))

    def loss(
        self, x: Tensor, *, lam: float | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Batch-mean clustering-VAE loss; ``lam`` overrides λ (for a schedule)."""
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, generator=generator)
        logits = None if self.classifier is None else self.classifier(z)
        loss = cluster_vae_loss(
            x, self.decode(z), mu, logvar, z, logits, self.means,
            lam=self.lam if lam is None else lam, kl=self.kl, prior_term=self.prior_term,
        )  # fmt: skip
        if self.balance == 0.0:
            return loss
        if logits is None:
            log_c = torch.log_softmax(-cluster_kl_matrix(mu, logvar, self.means, z, kl=self.kl), 1)
        else:
            log_c = torch.log_softmax(logits, 1)
        log_mean = torch.logsumexp(log_c, 0) - math.log(x.shape[0])  # log c̄
        return loss + self.balance * ((log_mean.exp() * log_mean).sum() + math.log(self.clusters))

    def vae_loss(
        self, x: Tensor, *, lam: float | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """The plain fixed-variance VAE loss λ·½‖x − G(z)‖² + KL(q(z|x) ‖ N(0, I)) (warm-up)."""
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, generator=generator)
        zero = torch.zeros(1, self.latent, dtype=mu.dtype, device=mu.device)
        return cluster_vae_loss(
            x, self.decode(z), mu, logvar, z, None, zero, lam=self.lam if lam is None else lam
        )

    @torch.no_grad()
    def responsibilities(self, x: Tensor) -> Tensor:
        """c(y|μ(x)), ``(B, K)``: the classifier at the encoder mean (or softmax(−KL_y))."""
        mu, logvar = self.encode(x)
        if self.classifier is not None:
            return torch.softmax(self.classifier(mu), dim=1)
        return torch.softmax(-cluster_kl_matrix(mu, logvar, self.means), dim=1)

    def cluster(self, x: Tensor) -> Tensor:
        """Hard cluster of each sample, ``(B,)`` int64 (argmax of :meth:`responsibilities`)."""
        return self.responsibilities(x).argmax(dim=1)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        cluster: int | Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Decoder means at z = μ_y + ε: one class ``cluster``, a ``(n,)`` tensor of classes, or
        (``None``) classes drawn uniformly. Returns ``(n, *data_shape)``."""
        dev = self.means.device
        if cluster is None:
            y = torch.randint(self.clusters, (n,), generator=generator).to(dev)
        elif isinstance(cluster, Tensor):
            y = cluster.to(dev, torch.long)
        else:
            if not 0 <= int(cluster) < self.clusters:
                raise ValueError(f"cluster must be in [0, {self.clusters}), got {cluster}")
            y = torch.full((n,), int(cluster), dtype=torch.long, device=dev)
        eps = torch.randn(n, self.latent, generator=generator, dtype=self.means.dtype).to(dev)
        return self.decode(self.means[y] + eps)
