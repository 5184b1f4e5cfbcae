"""Projections that ship with warmup: ``core`` (the tables every command reads) and ``steps`` (opt-in)."""
