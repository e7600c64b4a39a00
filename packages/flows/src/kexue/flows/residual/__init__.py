"""Invertible residual blocks (i-ResNet, Residual Flows) and what they are built from.

Nothing is imported here; the public names are re-exported by :mod:`kexue.flows`.

- :mod:`.iresblock` — ``IResBlock`` (y = x + g(x), inverse by fixed point), ``LipSwish``,
  ``mlp_residual``, ``conv_residual``, ``InverseInfo``, ``InverseNotConverged``.
- :mod:`.spectral` — spectral normalisation with a Lipschitz coefficient: ``SpectralNormLinear``,
  ``SpectralNormConv2d``, ``frozen_spectral_norm``.
- :mod:`.roulette` — log-determinant estimators: exact, power series, Hutchinson, Russian roulette
  (``roulette_weights``, ``neumann_logdet``, …).
"""
