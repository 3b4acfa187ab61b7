"""CIM's benchmarks: `python -m bench` runs them against baselines measured in the same run (docs/BENCHMARKS.md)."""
