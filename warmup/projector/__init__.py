"""The projector: folds the event log into SQLite tables, in its own synchronous process.

``Projector`` (projector.py) applies batches, ``handlers`` say what each event does to the rows,
``rows`` holds them in memory between writes, ``checkpoint`` records how far the tables go, and
``replay`` rebuilds everything from the start. ``schema`` lists the tables.
"""
