"""Benchmarks of zdd: figures, never pass/fail timing. Run them all with ``python -m bench``."""
