"""siyu's benchmark suite: each benchmark is a ratio against a floor measured in the same run.

Run `python -m bench` (or `make bench`); `--quick` for small sizes, `--only NAME` for one.
"""
