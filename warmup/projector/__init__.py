"""The projector: a generic runner of projections, in its own synchronous process.

``runner.ProjectionRunner`` reads the log in batches, has the core projection validate every event,
hands the accepted ones to each projection and keeps each one's checkpoint with its rows;
``projector.Projector`` is the runner on a log file. ``connect`` opens a projection's SQLite
database, ``specs`` loads ``--projection MODULE:CLASS``, ``scope`` is a partial replay's filter,
``replay`` rebuilds from the start, and ``command`` is ``warmup project`` / ``warmup replay``. The
tables themselves are projections: ``warmup.projections.core`` and ``warmup.projections.steps``.
"""
