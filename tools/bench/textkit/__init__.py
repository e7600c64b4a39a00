"""kexue-textkit benchmarks: ``crf``, ``tagging``, ``terms``, ``decode``, ``seq2seq``."""
