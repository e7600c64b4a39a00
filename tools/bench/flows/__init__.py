"""kexue-flows benchmarks: ``quality`` (digits bits/dim vs normflows), ``coupling`` (the fused
coupling kernel)."""
