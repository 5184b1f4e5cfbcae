"""Accounts handed out to workers on many hosts (``run --workers``, ``warmup worker``), over JetStream."""
