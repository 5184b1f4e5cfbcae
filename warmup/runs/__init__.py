"""Runs across processes and hosts: who is alive, who drives which account (``liveness``)."""
