"""Throughput, latency and state benchmarks: ``python -m benchmarks.run [--quick] [--json FILE]``."""
