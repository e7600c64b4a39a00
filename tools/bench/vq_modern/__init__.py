"""Benchmarks of kexue-vq 0.2 quantisers (FSQ, LFQ, SimVQ, residual) against vector-quantize-pytorch."""
