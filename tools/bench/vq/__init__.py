"""kexue-vq benchmarks: ``python -m tools.bench.vq`` (the nearest-code lookup and the quantiser
step, ``__main__.py``) and the 0.2 quantisers against vector-quantize-pytorch (``parity``, ``speed``,
``digits``)."""
