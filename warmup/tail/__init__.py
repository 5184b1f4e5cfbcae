"""``warmup tail``: the log's last events, one readable line each (or the raw lines), optionally live.

- ``backward``: complete lines from the end of a file towards its start (``-n`` without a full scan);
- ``filters``: which events match ``--run/--account/--type/--since``;
- ``format``: one readable line per event, control characters escaped, colour only on a terminal;
- ``command``: ``run_tail``, what the CLI calls.
"""
