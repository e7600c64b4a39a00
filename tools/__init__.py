"""Workspace tools (not a distribution): the demo, the benchmarks and the wheel check.

Everything runs as a module from the repository root: ``python -m tools.demo``,
``python -m tools.bench.vq``, ``python -m tools.bench.textkit.crf`` ... (see ``hatch.toml``).

- ``tools.demo`` and ``tools.demos``: the main job and its sections, one per package;
- ``tools.workloads``: the training set-ups that demos and benchmarks share (toy GAN, digits flows,
  People's Daily tagging and QA), written once;
- ``tools.bench``: benchmarks against the anchor libraries, grouped per package.
"""
