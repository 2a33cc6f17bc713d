"""Speed and diagnostic measurements, run from the repository root as ``python -m benchmarks.NAME``."""
