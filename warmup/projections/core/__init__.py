"""The core projection: tasks, accounts, runs, run_accounts, artifacts (and the rows that keep them exact).

``schema`` lists the tables, ``handlers`` say what each event does to them, ``rows`` holds them in
memory between writes. Its handlers are also the log's validation: an event they reject reaches no
other projection.
"""
