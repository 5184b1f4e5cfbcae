#!/usr/bin/env bash
# `make demo`: serve examples/site/ on 127.0.0.1 (standard library, a free port), run
# examples/demo.toml (4 accounts, dave fails on purpose), then print the status table.
# Everything it writes goes under warmup-data/ (the default log, database and artifacts).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DEMO=warmup-data/demo
mkdir -p "$DEMO"

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$PY" -m http.server "$PORT" --bind 127.0.0.1 --directory examples/site >"$DEMO/http.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    if "$PY" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/', timeout=1)" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
echo "demo: serving examples/site/ on http://127.0.0.1:$PORT/"

sed "s#http://127.0.0.1:8000#http://127.0.0.1:$PORT#g" examples/demo.toml >"$DEMO/demo.toml"
cp examples/demo-accounts.csv "$DEMO/"
# The demo's "secret": a real task would take it from your environment or a secrets manager.
export WARMUP_DEMO_PASSWORD=${WARMUP_DEMO_PASSWORD:-correct-horse-battery-staple}

set +e
"$PY" -m cli run "$DEMO/demo.toml"
code=$?
set -e
echo "demo: warmup run exited with $code (1 is expected: dave's account fails on purpose)"

echo
"$PY" -m cli status
echo
"$PY" -m cli report last -o warmup-data/report.html

echo
# The second example: an admin site, logging in only when needed (run twice: the second run finds
# the saved sign-in and skips the login steps), per-account user agents, a link read from the page.
sed "s#http://127.0.0.1:8000#http://127.0.0.1:$PORT#g" examples/admin.toml >"$DEMO/admin.toml"
for round in first second; do
    set +e
    "$PY" -m cli run "$DEMO/admin.toml"
    code=$?
    set -e
    echo "demo: admin.toml, $round run: exited with $code (1 is expected: mallory is not staff, her login is refused)"
done
echo
# `make demo` installs warmup into .venv, which is not on your PATH: the hints name .venv/bin/warmup
# (or `source .venv/bin/activate` once, then plain `warmup`).
WARMUP=.venv/bin/warmup
echo "demo: the log is warmup-data/events.jsonl ('$WARMUP tail -n all'), screenshots are under warmup-data/artifacts/,"
echo "      and a report of the demo.toml run is warmup-data/report.html (open it in a browser)"
echo "demo: try '$WARMUP show last', '$WARMUP runs', '$WARMUP tail -n all' (or run"
echo "      'source .venv/bin/activate' once and leave out the .venv/bin/; tab completion: see README)"
echo "demo: 'make serve' opens the dashboard on these example tasks (Start, live runs, schedules)"
