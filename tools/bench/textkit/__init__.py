"""kexue-textkit benchmarks: ``crf``, ``tagging``, ``terms``, ``decode``, ``seq2seq``."""

HEADER = "# kexue-textkit benchmarks\n"
"""How packages/textkit/BENCHMARKS.md starts when a benchmark's ``--write`` creates it."""
