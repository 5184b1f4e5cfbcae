#!/usr/bin/env bash
# `make serve`: the dashboard on the example tasks. The examples' site (examples/site/) is served on
# 127.0.0.1:8000, the address examples/*.toml use, then `warmup serve --tasks examples` runs until
# Ctrl-C. Everything it writes goes under warmup-data/ (the default log, database and artifacts).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SITE_PORT=8000
mkdir -p warmup-data

if "$PY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', $SITE_PORT))" 2>/dev/null; then
    "$PY" -m http.server "$SITE_PORT" --bind 127.0.0.1 --directory examples/site >warmup-data/site.log 2>&1 &
    SITE=$!
    trap 'kill "$SITE" 2>/dev/null || true' EXIT
    echo "serve: the examples' site is on http://127.0.0.1:$SITE_PORT/"
else
    echo "serve: port $SITE_PORT is taken: the example tasks will reach whatever answers there" >&2
fi
# The demo's "secret": a real deployment takes it from its environment or a secrets manager.
export WARMUP_DEMO_PASSWORD=${WARMUP_DEMO_PASSWORD:-correct-horse-battery-staple}
echo "serve: open the URL below; Ctrl-C stops the server (runs in flight get --grace seconds)"
"$PY" -m cli serve --tasks examples --port "${PORT:-8377}" "$@"
