"""Benchmarks and fault scenarios for entitle: `make bench` and `make chaos` (figures in docs/)."""
