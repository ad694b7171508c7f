"""Benchmark scripts, installed with opu-hal: run them from the repository root, e.g. ``python -m benchmarks.emulator``;
``opu-hal bench randnla`` and ``opu-hal bench dfa`` run two of them."""
