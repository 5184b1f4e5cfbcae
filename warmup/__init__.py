"""warmup: scripted browser warm-up sessions, recorded as an append-only event log.

The runner (``warmup.runner``) drives browsers and only appends events (``warmup.events``); the
projector (``warmup.projector``) folds the log into SQLite tables in a separate, synchronous process.
"""

__version__ = "0.1.0"
