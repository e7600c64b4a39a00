"""Model builders with paper / author presets; each returns a built model with ``model.config``.

Nothing is imported here; the public names are re-exported by :mod:`kexue.flows`. The
:class:`~kexue.flows.flow.FlowConfig` the builders attach lives in :mod:`kexue.flows.flow`.

- :mod:`.nice` — ``nice`` (additive couplings on vectors; NICE paper or Su's Keras preset).
- :mod:`.realnvp` — ``realnvp`` (multi-scale affine couplings, checkerboard / channel masks).
- :mod:`.glow` — ``glow`` (ActNorm → 1×1 conv → coupling, learned split prior).
- :mod:`.residual` — ``iresnet`` and ``residual_flow`` (stacks of ``IResBlock``).
"""
