"""kexue-vae benchmarks on scikit-learn digits: likelihood bounds, clustering, sample quality.

``python -m tools.bench.vae [--write] [--only likelihood,clustering,samples] [--quick]`` runs them
in turn (``hatch run bench:vae``); each is also a module of its own (``python -m
tools.bench.vae.likelihood``, ``.clustering``, ``.samples``) writing its block of
``packages/vae/BENCHMARKS.md``.
"""
