"""Browser discovery: which Chromium executable ``warmup run`` launches, and with which flags.

Order (the first that exists wins):

1. an explicit path (``--browser-path``);
2. ``$WARMUP_BROWSER``;
3. Playwright's own Chromium, if ``playwright install chromium`` put it in Playwright's browser
   folder (for headless runs its headless shell, when installed);
4. a system Chromium: ``/usr/bin/chromium-headless-shell`` (headless runs only), ``/usr/bin/chromium``,
   then ``chromium``, ``chromium-browser``, ``google-chrome`` on ``PATH``.

Headless runs prefer a headless shell: on this 2-core machine, ``bench/runner.py`` (32 accounts)
ran 5.3x faster at 8 accounts at once than one at a time with it, only 1.7x with full Chromium,
which saturates the cores spawning renderers. Headed runs need a full one.

Playwright's own browsers are found from its ``browsers.json`` and browser folder, without starting
its driver, so discovery costs a few ``stat`` calls.

``python -m warmup.browser [--headed]`` prints the path found and exits 0, or prints one line saying
how to get a browser and exits 1 (``scripts/ensure-browser.sh`` relies on this).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from warmup.errors import UsageError, WarmupError

# Flags that keep a closed network quiet: no background fetches, updates, first-run or sync traffic.
LAUNCH_ARGS = (
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
)
SYSTEM_HEADLESS_SHELL = "/usr/bin/chromium-headless-shell"
SYSTEM_CHROMIUM = "/usr/bin/chromium"
PATH_NAMES = ("chromium", "chromium-browser", "google-chrome")
HOW_TO_GET_ONE = (
    "no Chromium found: run 'playwright install chromium' (or 'make browser'), install your distribution's "
    "chromium package, or point --browser-path / WARMUP_BROWSER at a Chromium executable"
)


def launch_args() -> list[str]:
    """Chromium flags for every launch; ``--no-sandbox`` only when running as root (it cannot sandbox)."""
    args = list(LAUNCH_ARGS)
    if os.geteuid() == 0:
        args.append("--no-sandbox")
    return args


def _is_executable(path: str | os.PathLike[str]) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _playwright_browsers_dir() -> Path | None:
    configured = os.environ.get("PLAYWRIGHT_BROWSERS_PATH")
    if configured == "0":
        try:
            import playwright
        except ImportError:
            return None
        return Path(playwright.__file__).parent / "driver" / "package" / ".local-browsers"
    if configured:
        return Path(configured)
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "ms-playwright"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "ms-playwright"


def _playwright_revisions() -> dict[str, str]:
    """name -> revision from the installed Playwright's browsers.json ({} if unknown)."""
    try:
        import playwright
    except ImportError:
        return {}
    manifest = Path(playwright.__file__).parent / "driver" / "package" / "browsers.json"
    try:
        data = json.loads(manifest.read_text())
        return {b["name"]: str(b["revision"]) for b in data["browsers"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def playwright_chromium(headless: bool) -> str | None:
    """Playwright's own Chromium (its headless shell for headless runs, if installed), or None."""
    base = _playwright_browsers_dir()
    revisions = _playwright_revisions()
    if base is None or not base.is_dir():
        return None
    candidates: list[Path] = []
    shell_rev = revisions.get("chromium-headless-shell")
    chromium_rev = revisions.get("chromium")
    if headless and shell_rev:
        folder = base / f"chromium_headless_shell-{shell_rev}"
        candidates += [
            folder / "chrome-headless-shell-linux64" / "chrome-headless-shell",
            folder / "chrome-linux" / "headless_shell",
            folder / "chrome-headless-shell-mac-arm64" / "chrome-headless-shell",
            folder / "chrome-headless-shell-mac-x64" / "chrome-headless-shell",
        ]
    if chromium_rev:
        folder = base / f"chromium-{chromium_rev}"
        candidates += [
            folder / "chrome-linux64" / "chrome",
            folder / "chrome-linux" / "chrome",
            folder / "chrome-mac-arm64" / "Google Chrome for Testing.app/Contents/MacOS/Google Chrome for Testing",
            folder / "chrome-mac-x64" / "Google Chrome for Testing.app/Contents/MacOS/Google Chrome for Testing",
        ]
    return next((str(c) for c in candidates if _is_executable(c)), None)


def find_browser(explicit: str | os.PathLike[str] | None = None, *, headless: bool = True) -> str:
    """The Chromium executable to launch; raises UsageError (bad explicit path) or WarmupError (none)."""
    if explicit:
        return _checked(explicit, "--browser-path")
    from_env = os.environ.get("WARMUP_BROWSER")
    if from_env:
        return _checked(from_env, "WARMUP_BROWSER")
    own = playwright_chromium(headless)
    if own:
        return own
    candidates = ([SYSTEM_HEADLESS_SHELL] if headless else []) + [SYSTEM_CHROMIUM]
    for candidate in candidates:
        if _is_executable(candidate):
            return candidate
    for name in PATH_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise WarmupError(HOW_TO_GET_ONE, exit_code=1)


def _checked(path: str | os.PathLike[str], where: str) -> str:
    path = os.path.expanduser(os.fspath(path))
    if os.sep not in path:  # a bare name: look it up on PATH
        found = shutil.which(path)
        if found:
            return found
    if not os.path.exists(path):
        raise UsageError(f"{where}: no such file: {path}")
    if not _is_executable(path):
        raise UsageError(f"{where}: not an executable file: {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        print(find_browser(headless="--headed" not in args))
    except WarmupError as exc:
        print(f"warmup: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
