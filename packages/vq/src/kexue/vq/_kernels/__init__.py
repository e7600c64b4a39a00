"""Triton fast paths, one module per op (``triton_<op>.py``), imported lazily by :mod:`kexue.vq.functional`.

- :mod:`.triton_assign` — fused nearest-code search (distance GEMM + running argmin, no N×K tensor).
- :mod:`.triton_epilogue` — per-code counts and sums for the k-means / EMA update, no one-hot.
"""
