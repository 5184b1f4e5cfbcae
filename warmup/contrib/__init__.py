"""Integrations with other frameworks, each an optional extra: ``warmup.contrib.django`` (``warmup[django]``).

Nothing under ``warmup.contrib`` is imported by warmup itself: the runner and the CLI never load a
framework (``tests/test_import_contract.py``).
"""
