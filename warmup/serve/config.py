"""What ``warmup serve`` was told: the folders, the address, the token. Checked once, at start."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from warmup.errors import UsageError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8377
DEFAULT_GRACE_S = 30.0
TOKEN_ENV = "WARMUP_TOKEN"
MIN_TOKEN_CHARS = 16


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeConfig:
    """Invariant: a host other than loopback always comes with a token (``check`` refuses otherwise)."""

    tasks_dir: Path
    log: Path | str  # a file path or a nats:// URL (``--log``)
    db_path: Path
    artifacts: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    grace_s: float = DEFAULT_GRACE_S

    @property
    def runs_output_dir(self) -> Path:
        """Where each run child's stdout/stderr goes (never served: kept for the operator)."""
        return self.db_path.parent / "serve-runs"

    def check(self) -> None:
        """One line (exit 2) for what cannot work, before anything starts."""
        if not is_loopback(self.host) and not self.token:
            raise UsageError(
                f"--host {self.host} lets other machines in: give --token (or {TOKEN_ENV}) so every request "
                "must carry it, or keep the default --host 127.0.0.1"
            )
        if self.token is not None and len(self.token) < MIN_TOKEN_CHARS:
            raise UsageError(f"--token must be at least {MIN_TOKEN_CHARS} characters (try: openssl rand -hex 16)")
        if not self.tasks_dir.is_dir():
            raise UsageError(f"--tasks {self.tasks_dir}: no such folder (the folder of your task files)")
        if not 0 <= self.port <= 65535:
            raise UsageError(f"--port {self.port}: not a port (0 picks a free one)")
        if self.grace_s < 0:
            raise UsageError(f"--grace must be 0 or more seconds, not {self.grace_s:g}")


def token_from_env() -> str | None:
    return os.environ.get(TOKEN_ENV) or None
