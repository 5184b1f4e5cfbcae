"""``warmup serve``: the dashboard, the JSON and streaming API, and the schedules, in one process.

The server starts each run as its own ``warmup run`` child process (which only appends to the log)
and keeps one ``warmup project --follow`` child beside it; it reads the projected tables (in a thread
pool, never on the event loop) and follows the log itself to push events to pages and API clients.
"""
