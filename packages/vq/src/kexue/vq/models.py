"""Reference VQ-VAE and VQ-VAE-2 image models built on :class:`kexue.vq.quantizer.VectorQuantizer`.

VQ-VAE (van den Oord et al. 2017): x → encoder → z (B, D, h, w) → nearest code e_k per position
(straight-through) → decoder → x̂, trained with

    L = ‖x − x̂‖² + codebook_weight·‖sg(z) − e‖² + β·‖z − sg(e)‖²

(with an EMA codebook the middle term is dropped and the codebook follows the EMA of its assigned
latents). As Su Jianlin points out, with a one-hot posterior and a uniform prior the KL is the
constant ln K, so the model is really an autoencoder with a discrete bottleneck; the generative
part is an autoregressive prior fitted to the code maps afterwards (out of scope here — the models
expose the token interface :meth:`VQVAE.encode` / :meth:`VQVAE.decode_indices` for it).

VQ-VAE-2 (Razavi et al. 2019; rosinality/vq-vae-2-pytorch): two levels. The bottom encoder
downsamples by 2^downsample, the top encoder by a further 2; the top latents are quantised first,
the top decoder's output (upsampled ×2) is concatenated with the bottom features and a 1×1
convolution feeds the bottom quantiser; the decoder takes concat(upsample(q_top), q_bottom).

References:
    van den Oord, Vinyals, Kavukcuoglu, "Neural Discrete Representation Learning", arXiv 1711.00937;
    Razavi, van den Oord, Vinyals, "Generating Diverse High-Fidelity Images with VQ-VAE-2",
    arXiv 1906.00446; https://kexue.fm/archives/6760 (VQ-VAE post, believed URL);
    https://kexue.fm/archives/9826 (FSQ post; the 2023 VQ-VAE baseline).
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn

from ._model_blocks import (
    ConvDecoder,
    ConvEncoder,
    Trunk,
    check_images,
    check_indices,
    output_activation,
    reconstruction_loss,
)
from .model_quantizers import make_quantizer, num_codes_of, stages_of
from .quantizer import QuantizerOutput, VectorQuantizer

__all__ = ["PRESETS", "VQVAE", "VQVAE2", "VQVAELoss"]

OutputActivation = Literal["none", "tanh", "sigmoid"]
ReconstructionLoss = Literal["mean", "sum_per_sample"]
_OUTPUT_ACTIVATIONS = ("none", "tanh", "sigmoid")
_RECONSTRUCTION = ("mean", "sum_per_sample")

# Defaults when no preset is given: the paper's layout with a narrower trunk (128 instead of 256).
_BASE: dict[str, Any] = {
    "hidden": 128,
    "res_blocks": 2,
    "downsample": 2,
    "num_codes": 512,
    "code_dim": 64,
    "norm": "none",
    "activation": "relu",
    "residual_scale": 1.0,
    "output_activation": "none",
    "reconstruction_loss": "mean",
    "codebook_init": None,
    "vq": {},
}

PRESETS: dict[str, dict[str, Any]] = {
    # VQ-VAE paper §4.1 / appendix: 256 hidden, 2 stride-2 4×4 convs, 2 residual blocks,
    # K = 512, D = 64, β = 0.25, EMA γ = 0.99, ε = 1e-5, mean squared error.
    "paper": {
        "hidden": 256,
        "num_codes": 512,
        "code_dim": 64,
        "vq": {"beta": 0.25, "decay": 0.99, "eps": 1e-5, "reduction": "mean"},
    },
    # bojone/vae vq_vae_keras.py (2019): 64 codes, z_dim 128, mean MSE for all three terms with
    # weights 1 (codebook) and 0.25 (commitment), learned codebook (no EMA), ResBlocks with BN,
    # tanh output for data in [-1, 1], codebook init Keras "uniform" U(-0.05, 0.05).
    "su2019": {
        "num_codes": 64,
        "code_dim": 128,
        "norm": "batch",
        "output_activation": "tanh",
        "codebook_init": "uniform",
        "vq": {"beta": 0.25, "codebook_weight": 1.0, "decay": None, "reduction": "mean"},
    },
    # bojone/FSQ vqvae.py (2023): K = 1296 = 6⁴, squared error summed per image ("use L2, not
    # MSE"), loss = recon + q + 0.25·e, GroupNorm + swish ResBlocks with the residual branch's
    # init scaled by 0.1, lecun-normal codebook. code_dim 64 is this package's choice [estimate].
    "su2023": {
        "num_codes": 1296,
        "code_dim": 64,
        "norm": "group",
        "activation": "swish",
        "residual_scale": 0.1,
        "reconstruction_loss": "sum_per_sample",
        "codebook_init": "lecun_normal",
        "vq": {
            "beta": 0.25,
            "codebook_weight": 1.0,
            "decay": None,
            "reduction": "sum_per_sample",
        },
    },
}


class VQVAELoss(NamedTuple):
    """What :meth:`VQVAE.loss` / :meth:`VQVAE2.loss` return.

    ``total`` = ``reconstruction`` + ``quantizer`` (scalars); ``output`` is the reconstruction
    x̂ and ``quantizer_output`` the :class:`QuantizerOutput` (a tuple (top, bottom) for VQ-VAE-2).
    """

    total: Tensor
    reconstruction: Tensor
    quantizer: Tensor
    output: Tensor
    quantizer_output: Any


def _resolve(preset: str | None, overrides: dict[str, Any]) -> dict[str, Any]:
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)} or None, got {preset!r}")
    cfg = {**_BASE, **(PRESETS[preset] if preset else {})}
    cfg["vq"] = dict(cfg["vq"])
    for key, value in overrides.items():
        if value is not None:
            cfg[key] = value
    if cfg["output_activation"] not in _OUTPUT_ACTIVATIONS:
        raise ValueError(
            f"output_activation must be one of {_OUTPUT_ACTIVATIONS}, "
            f"got {cfg['output_activation']!r}"
        )
    if cfg["reconstruction_loss"] not in _RECONSTRUCTION:
        raise ValueError(
            f"reconstruction_loss must be one of {_RECONSTRUCTION}, "
            f"got {cfg['reconstruction_loss']!r}"
        )
    for key in ("hidden", "num_codes", "code_dim"):
        if int(cfg[key]) < 1:
            raise ValueError(f"{key} must be >= 1, got {cfg[key]}")
    for key in ("res_blocks", "downsample"):
        if int(cfg[key]) < 0:
            raise ValueError(f"{key} must be >= 0, got {cfg[key]}")
    return cfg


#: The architecture arguments of both models (resolved against a preset by :func:`_resolve`) and
#: the part of them that configures the conv blocks.
_ARCH = (
    "hidden",
    "res_blocks",
    "downsample",
    "num_codes",
    "code_dim",
    "norm",
    "activation",
    "residual_scale",
    "output_activation",
    "reconstruction_loss",
)
_BLOCKS = ("hidden", "res_blocks", "norm", "activation", "residual_scale")


def _configure(
    model: nn.Module,
    args: dict[str, Any],
    quantizer: str,
    vq_kwargs: dict[str, Any],
    preset: str | None = None,
    *,
    has_preset: bool = False,
) -> tuple[dict[str, Any], dict[str, Any], Trunk]:
    """The set-up :class:`VQVAE` and :class:`VQVAE2` share: argument checks, the resolved config
    (``args`` = the constructor's locals), the quantiser kwargs (the preset's ``vq`` settings under
    ``vq_kwargs`` for ``quantizer="vq"`` when ``has_preset``) and the conv-block kwargs; sets
    ``model.config``, ``in_channels``, ``downsample``, ``output_activation`` and
    ``reconstruction_loss``."""
    in_channels = args["in_channels"]
    if in_channels < 1:
        raise ValueError(f"in_channels must be >= 1, got {in_channels}")
    cfg = _resolve(preset, {key: args[key] for key in _ARCH})
    preset_vq = cfg.pop("vq")
    vq = {**(preset_vq if has_preset and quantizer == "vq" else {}), **vq_kwargs}
    if "layout" in vq:
        raise ValueError("vq_kwargs must not set layout: the models use 'channels_first'")
    model.config = {**cfg, "in_channels": in_channels, **({"preset": preset} if has_preset else {})}
    model.config.update(vq=vq, quantizer=quantizer)
    model.in_channels = in_channels
    model.downsample = int(cfg["downsample"])
    model.output_activation = cfg["output_activation"]
    model.reconstruction_loss = cfg["reconstruction_loss"]
    return cfg, vq, Trunk(**{key: cfg[key] for key in _BLOCKS})


def _init_codebook(quantizer: nn.Module, scheme: str | None) -> None:
    """Su's codebook initialisations, through ``load_codebook`` (EMA state kept consistent)."""
    if scheme is None or not isinstance(quantizer, VectorQuantizer):
        return
    k, d = quantizer.num_codes, quantizer.codebook_dim
    weights = torch.empty(k, d)
    if scheme == "uniform":  # Keras "uniform" initializer: U(-0.05, 0.05)
        weights.uniform_(-0.05, 0.05)
    else:  # lecun_normal: truncated normal with std sqrt(1 / fan_in), fan_in = D
        nn.init.trunc_normal_(weights, std=d**-0.5, a=-2 * d**-0.5, b=2 * d**-0.5)
    quantizer.load_codebook(weights)


class _QuantizedEncoding:
    """Run a quantizer without touching its state (eval mode, no autograd), then restore."""

    def __init__(self, *quantizers: nn.Module) -> None:
        self.quantizers = quantizers
        self.modes: list[bool] = []

    def __enter__(self) -> None:
        self.modes = [q.training for q in self.quantizers]
        for q in self.quantizers:
            q.eval()

    def __exit__(self, *exc: object) -> None:
        for q, mode in zip(self.quantizers, self.modes):
            q.train(mode)


class VQVAE(nn.Module):
    """Convolutional VQ-VAE: encoder → :class:`VectorQuantizer` → decoder.

    The encoder has ``downsample`` stride-2 4×4 convolutions, a 3×3 convolution, ``res_blocks``
    residual blocks and a 1×1 projection to ``code_dim``; the decoder is its transpose (stride-2
    4×4 transposed convolutions). A (B, C, H, W) image becomes an (H / 2^downsample) ×
    (W / 2^downsample) grid of code indices.

    Presets (:data:`PRESETS`; explicit arguments override them, ``vq_kwargs`` override the
    preset's quantiser options):

    - ``"paper"``: hidden 256, K = 512, D = 64, β = 0.25, EMA γ = 0.99, ε = 1e-5, mean MSE.
    - ``"su2019"`` (bojone/vae): K = 64, D = 128, β = 0.25, codebook weight 1, mean MSE, learned
      codebook (no EMA) initialised U(−0.05, 0.05), BatchNorm ResBlocks, tanh output (data in
      [−1, 1]).
    - ``"su2023"`` (bojone/FSQ ``vqvae.py``): K = 1296, squared error summed per sample (also in
      the quantiser), learned codebook (lecun-normal), GroupNorm + swish ResBlocks with the
      residual branch initialised ×0.1.
    - ``None``: hidden 128, K = 512, D = 64, ReLU, no normalisation, identity output, mean MSE and
      the quantiser's own defaults (β = 0.25, EMA γ = 0.99).

    Arguments:
        in_channels: image channels (default 3).
        hidden: trunk channels.
        res_blocks: residual blocks in the encoder and in the decoder.
        downsample: stride-2 convolutions in the encoder (= transposed ones in the decoder).
        num_codes: codebook size K.
        code_dim: code dimension D (latent channels).
        norm: ``"none"``, ``"batch"`` or ``"group"`` in the residual blocks.
        activation: ``"relu"`` or ``"swish"``.
        residual_scale: initial scale of each residual branch's last convolution.
        output_activation: ``"none"``, ``"tanh"`` (data in [−1, 1]) or ``"sigmoid"`` ([0, 1]).
        reconstruction_loss: ``"mean"`` (MSE over all elements) or ``"sum_per_sample"`` (squared
            error summed over C, H, W, averaged over the batch) for :meth:`loss`.
        preset: ``"paper"``, ``"su2019"``, ``"su2023"`` or None.
        quantizer: ``"vq"`` (default, :class:`VectorQuantizer`), ``"fsq"``, ``"lfq"``, ``"simvq"``,
            ``"residual_vq"``, ``"residual_fsq"`` or ``"residual_lfq"`` (see
            :func:`~kexue.vq.model_quantizers.make_quantizer`: FSQ takes ``levels=`` or the paper's
            table for K = 2^b, LFQ log2 K bits, residual kinds ``num_quantizers=``). A preset's
            quantiser options and codebook init apply to ``"vq"`` only.
        vq_kwargs: passed to the quantiser (``layout`` is fixed to ``"channels_first"``).

    Returns (forward):
        ``(x̂, QuantizerOutput)`` with x̂ of x's shape.

    Example:
        >>> model = VQVAE(1, hidden=32, downsample=1, num_codes=16, code_dim=8)
        >>> x_hat, q = model(torch.rand(4, 1, 8, 8))
        >>> x_hat.shape, q.indices.shape
        (torch.Size([4, 1, 8, 8]), torch.Size([4, 4, 4]))

    References:
        arXiv 1711.00937 (VQ-VAE); https://kexue.fm/archives/6760; bojone/vae, bojone/FSQ.
    """

    def __init__(
        self,
        in_channels: int = 3,
        *,
        hidden: int | None = None,
        res_blocks: int | None = None,
        downsample: int | None = None,
        num_codes: int | None = None,
        code_dim: int | None = None,
        norm: str | None = None,
        activation: str | None = None,
        residual_scale: float | None = None,
        output_activation: OutputActivation | None = None,
        reconstruction_loss: ReconstructionLoss | None = None,
        preset: str | None = None,
        quantizer: str = "vq",
        **vq_kwargs: Any,
    ) -> None:
        super().__init__()
        cfg, vq, blocks = _configure(self, locals(), quantizer, vq_kwargs, preset, has_preset=True)
        self.encoder = ConvEncoder(in_channels, cfg["code_dim"], blocks, downsample=self.downsample)
        self.quantizer = make_quantizer(quantizer, cfg["num_codes"], cfg["code_dim"], **vq)
        _init_codebook(self.quantizer, cfg["codebook_init"])
        self.decoder = ConvDecoder(cfg["code_dim"], in_channels, blocks, upsample=self.downsample)

    @property
    def num_codes(self) -> int:
        """Codebook size K (per stage / head)."""
        return num_codes_of(self.quantizer)

    def _check(self, x: Tensor) -> None:
        check_images(x, self.in_channels, 2**self.downsample, "VQVAE")

    def _decode(self, q: Tensor) -> Tensor:
        return output_activation(self.decoder(q), self.output_activation)

    def forward(self, x: Tensor) -> tuple[Tensor, QuantizerOutput]:
        """Reconstruct x: (B, C, H, W) → (x̂ (B, C, H, W), QuantizerOutput with indices (B, h, w))."""
        self._check(x)
        out = self.quantizer(self.encoder(x))
        return self._decode(out.quantized), out

    def loss(self, x: Tensor) -> VQVAELoss:
        """Reconstruction loss + quantiser loss of one batch (see ``reconstruction_loss``)."""
        x_hat, out = self(x)
        recon = reconstruction_loss(x_hat, x, self.reconstruction_loss)
        return VQVAELoss(recon + out.loss, recon, out.loss, x_hat, out)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Token grid of x: (B, C, H, W) → int64 (B, H / 2^downsample, W / 2^downsample).

        Runs without autograd and with the quantiser in eval mode (no codebook update); the
        encoder runs in its current mode.
        """
        self._check(x)
        with _QuantizedEncoding(self.quantizer):
            return self.quantizer(self.encoder(x)).indices

    def decode_indices(self, indices: Tensor) -> Tensor:
        """Image from a token grid: int (B, h, w) (residual kinds: (B, h, w, Q)) → (B, C,
        h·2^downsample, w·2^downsample)."""
        check_indices(indices, self.num_codes, "indices", stages_of(self.quantizer))
        return self._decode(self.quantizer.lookup(indices.long()))


class VQVAE2(nn.Module):
    """Two-level VQ-VAE-2 (rosinality/vq-vae-2-pytorch layout).

    Bottom encoder: ×2^downsample down to features f_b (hidden channels); top encoder: a further
    ×2 down to z_t (code_dim). Top quantiser first: q_t. The top decoder maps q_t up ×2 to
    code_dim channels; concat(that, f_b) → 1×1 conv → z_b → bottom quantiser: q_b. The decoder
    takes concat(upsample×2(q_t), q_b) up ×2^downsample to the image. For 256² inputs and the
    default ``downsample=2`` the grids are 32² (top) and 64² (bottom), as in the paper.

    Arguments:
        in_channels: image channels (default 3).
        hidden: trunk channels of every encoder and decoder (rosinality: 128).
        res_blocks: residual blocks per encoder / decoder (rosinality: 2).
        downsample: stride-2 convolutions of the bottom encoder (the top adds one).
        num_codes: codebook size per level (default 512, rosinality).
        code_dim: code dimension per level (default 64, rosinality).
        norm, activation, residual_scale: residual block options (see :class:`VQVAE`).
        output_activation: ``"none"``, ``"tanh"`` or ``"sigmoid"``.
        reconstruction_loss: ``"mean"`` or ``"sum_per_sample"`` (see :class:`VQVAE`).
        quantizer: the kind of both quantisers (see :class:`VQVAE`); default ``"vq"``.
        vq_kwargs: passed to both quantisers (:class:`VectorQuantizer` defaults: β = 0.25, EMA
            γ = 0.99, ε = 1e-5, which are rosinality's latent-loss weight and EMA settings).

    Returns (forward):
        ``(x̂, (QuantizerOutput top, QuantizerOutput bottom))``.

    References:
        arXiv 1906.00446 (VQ-VAE-2); rosinality/vq-vae-2-pytorch.
    """

    def __init__(
        self,
        in_channels: int = 3,
        *,
        hidden: int = 128,
        res_blocks: int = 2,
        downsample: int = 2,
        num_codes: int = 512,
        code_dim: int = 64,
        norm: str = "none",
        activation: str = "relu",
        residual_scale: float = 1.0,
        output_activation: OutputActivation = "none",
        reconstruction_loss: ReconstructionLoss = "mean",
        quantizer: str = "vq",
        **vq_kwargs: Any,
    ) -> None:
        super().__init__()
        cfg, vq, blocks = _configure(self, locals(), quantizer, vq_kwargs)
        hidden, code_dim, num_codes = cfg["hidden"], cfg["code_dim"], cfg["num_codes"]
        downsample = self.downsample
        self.encoder_bottom = ConvEncoder(in_channels, hidden, blocks, downsample=downsample)
        self.encoder_top = ConvEncoder(hidden, code_dim, blocks, downsample=1)
        self.quantizer_top = make_quantizer(quantizer, num_codes, code_dim, **vq)
        self.decoder_top = ConvDecoder(code_dim, code_dim, blocks, upsample=1)
        self.pre_quantize_bottom = nn.Conv2d(code_dim + hidden, code_dim, 1)
        self.quantizer_bottom = make_quantizer(quantizer, num_codes, code_dim, **vq)
        self.upsample_top = nn.ConvTranspose2d(code_dim, code_dim, 4, stride=2, padding=1)
        self.decoder = ConvDecoder(2 * code_dim, in_channels, blocks, upsample=downsample)

    @property
    def num_codes(self) -> int:
        """Codebook size K of each level (per stage / head)."""
        return num_codes_of(self.quantizer_top)

    def _check(self, x: Tensor) -> None:
        check_images(x, self.in_channels, 2 ** (self.downsample + 1), "VQVAE2")

    def _quantize(self, x: Tensor) -> tuple[QuantizerOutput, QuantizerOutput]:
        features = self.encoder_bottom(x)
        top = self.quantizer_top(self.encoder_top(features))
        z_bottom = self.pre_quantize_bottom(
            torch.cat([self.decoder_top(top.quantized), features], dim=1)
        )
        return top, self.quantizer_bottom(z_bottom)

    def _decode(self, q_top: Tensor, q_bottom: Tensor) -> Tensor:
        x_hat = self.decoder(torch.cat([self.upsample_top(q_top), q_bottom], dim=1))
        return output_activation(x_hat, self.output_activation)

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[QuantizerOutput, QuantizerOutput]]:
        """(B, C, H, W) → (x̂, (top output, bottom output)); top indices (B, H/2^(d+1), W/2^(d+1)),
        bottom indices (B, H/2^d, W/2^d) with d = ``downsample``."""
        self._check(x)
        top, bottom = self._quantize(x)
        return self._decode(top.quantized, bottom.quantized), (top, bottom)

    def loss(self, x: Tensor) -> VQVAELoss:
        """Reconstruction loss + both quantisers' losses of one batch."""
        x_hat, (top, bottom) = self(x)
        recon = reconstruction_loss(x_hat, x, self.reconstruction_loss)
        q_loss = top.loss + bottom.loss
        return VQVAELoss(recon + q_loss, recon, q_loss, x_hat, (top, bottom))

    @torch.no_grad()
    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Token grids (top (B, H/2^(d+1), W/2^(d+1)), bottom (B, H/2^d, W/2^d)), int64; quantisers
        in eval mode (no codebook update), no autograd."""
        self._check(x)
        with _QuantizedEncoding(self.quantizer_top, self.quantizer_bottom):
            top, bottom = self._quantize(x)
        return top.indices, bottom.indices

    def decode_indices(self, top: Tensor, bottom: Tensor) -> Tensor:
        """Image from the two token grids; ``bottom`` must be twice ``top``'s size."""
        stages = stages_of(self.quantizer_top)
        check_indices(top, self.num_codes, "top", stages)
        check_indices(bottom, self.num_codes, "bottom", stages)
        if (
            bottom.shape[0] != top.shape[0]
            or bottom.shape[1] != 2 * top.shape[1]
            or bottom.shape[2] != 2 * top.shape[2]
        ):
            raise ValueError(
                f"bottom must be (B, 2h, 2w) for top (B, h, w), got top {tuple(top.shape)} and "
                f"bottom {tuple(bottom.shape)}"
            )
        q_top = self.quantizer_top.lookup(top.long())
        q_bottom = self.quantizer_bottom.lookup(bottom.long())
        return self._decode(q_top, q_bottom)
