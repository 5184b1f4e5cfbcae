"""The runner: drives real Chromium through a task's steps for each account and appends events only.

``command.run_command`` is what ``warmup run`` calls. ``engine`` is the asyncio runner (one browser,
one context per account, a semaphore for concurrency, timeouts, retries, Ctrl-C handling);
``actions`` performs one step on a page; ``recorder`` writes scrubbed events; ``progress`` shows
what is happening; ``projector_child`` runs ``warmup project --follow`` beside the run.

Invariant: nothing in this package imports sqlite3 or sqlite_utils, directly or not, and the runner
process opens no database file. ``tests/test_runner_nodb.py`` proves it with an audit hook.
"""
