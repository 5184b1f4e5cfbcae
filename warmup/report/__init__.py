"""``warmup report``: one self-contained HTML file about one run.

``data`` gathers the run (from the database, read only) and its step timings (from the log),
``render`` turns them into HTML with every text escaped, ``command`` writes the file.
"""
