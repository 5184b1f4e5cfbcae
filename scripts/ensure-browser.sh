#!/usr/bin/env bash
# Make sure warmup can find a Chromium: one already discoverable, else Playwright's own build
# (`playwright install`), else the distribution's packages (Debian: chromium-headless-shell, chromium).
set -euo pipefail
PY=${PY:-.venv/bin/python}

found() { "$PY" -m warmup.browser >/dev/null 2>&1; }

if found; then exit 0; fi

echo "ensure-browser: no Chromium found; trying 'playwright install chromium'..." >&2
if timeout 600 "$PY" -m playwright install chromium >/dev/null 2>&1 && found; then exit 0; fi

echo "ensure-browser: Playwright could not download its browser; installing the distribution's Chromium..." >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
if command -v apt-get >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium-headless-shell chromium >/dev/null \
        || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
elif command -v dnf >/dev/null 2>&1; then
    $SUDO dnf install -y chromium-headless chromium
fi
if found; then exit 0; fi
echo "ensure-browser: still no Chromium. Install one (your distribution's 'chromium' package, or" \
     "'playwright install chromium') or point WARMUP_BROWSER at it." >&2
exit 1
