"""Triton fast paths, one module per op (``triton_<op>.py``), imported lazily by :mod:`kexue.flows.functional`.

- :mod:`.triton_coupling` — the fused affine / additive coupling forward, inverse and backward.
"""
