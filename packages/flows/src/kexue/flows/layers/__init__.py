"""Flow layers: the invertible building blocks a :class:`~kexue.flows.flow.Flow` composes.

Each module is one family; every layer follows the :class:`~kexue.flows.base.FlowLayer` contract.
Nothing is imported here (importing one module never runs the others); the public names are
re-exported by :mod:`kexue.flows`.

- :mod:`.coupling` — ``AdditiveCoupling``, ``AffineCoupling``, ``channel_mask``, ``checkerboard_mask``.
- :mod:`.scale_maps` — the affine couplings' scale maps (``SCALE_MAPS``, ``apply_scale_map``, …),
  shared with the reference ops in :mod:`kexue.flows.functional`.
- :mod:`.normalization` — ``ActNorm``, ``AffineBatchNorm``, ``DiagonalScale``.
- :mod:`.conv1x1` — ``Invertible1x1Conv`` (dense or LU), ``FoldedActNormConv``, ``fold_actnorm_conv``.
- :mod:`.permutation` — ``Permutation`` (reverse / random / fixed).
- :mod:`.reshape` — ``Squeeze``, ``Unsqueeze``, ``Reshape``, ``Flatten``, ``ParitySplit``,
  ``Interleave`` and the ``parity_*`` / ``channel_*`` split and merge helpers.
- :mod:`.logit` — ``LogitTransform`` (the logit pre-processing layer).
"""
