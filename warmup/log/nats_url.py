"""Parsing a ``nats://`` log URL and the credentials named by ``WARMUP_NATS_CREDS``.

Invariant: no credential ever reaches a message, an exception text or ``NatsTarget.name``. A URL
with user info is refused (without echoing it); credentials come only from a file, whose content
is never quoted.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from warmup.errors import UsageError

DEFAULT_STREAM = "WARMUP"
CREDS_ENV = "WARMUP_NATS_CREDS"
SCHEMES = ("nats", "tls")
_STREAM_RE = re.compile(r"[A-Za-z0-9_-]+")
_JWT_MARK = "-----BEGIN NATS USER JWT-----"


@dataclass(frozen=True)
class NatsAuth:
    """Connection keywords for nats-py; ``repr`` shows none of them (``source`` is the file's path)."""

    source: str | None = None
    options: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def kwargs(self) -> dict[str, str]:
        return dict(self.options)


@dataclass(frozen=True)
class NatsTarget:
    """Where a log lives: its servers (``nats://h:p`` each), its stream, and ``name`` (for people)."""

    scheme: str
    servers: tuple[str, ...]
    stream: str
    name: str

    @property
    def display_servers(self) -> str:
        return ",".join(self.servers)


def parse_nats_url(url: str) -> NatsTarget:
    """``nats://HOST:PORT[,HOST:PORT...][/STREAM]``: refuses user info, bad hosts, ports, streams."""
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise UsageError(f"not a NATS URL: {url!r} (use nats://HOST:PORT/STREAM)")
    if "@" in rest:  # before any split: a password may hold '/', '?' or '#', and no message may quote it
        raise UsageError("credentials in a NATS URL are refused: name a credentials file in WARMUP_NATS_CREDS")
    hosts_part, _, path = rest.partition("/")
    if "?" in path or "#" in path:
        raise UsageError(f"a NATS log URL takes no query or fragment: {url!r}")
    stream = path.strip("/") or DEFAULT_STREAM
    if not _STREAM_RE.fullmatch(stream):
        raise UsageError(f"bad stream name {stream!r} in {url!r}: use letters, digits, '_' and '-'")
    servers: list[str] = []
    for part in hosts_part.split(","):
        if not part:
            raise UsageError(f"no host in the NATS URL {url!r}")
        try:
            split = urlsplit(f"{scheme}://{part}")
            host, port = split.hostname, split.port
        except ValueError:
            raise UsageError(f"bad port in the NATS URL {url!r}") from None
        if not host:
            raise UsageError(f"no host in the NATS URL {url!r}")
        if split.path:
            raise UsageError(f"bad host {part!r} in the NATS URL {url!r}")
        shown = f"[{host}]" if ":" in host else host
        servers.append(f"{scheme}://{shown}:{port or 4222}")
    name = f"{scheme}://{hosts_part}/{stream}"
    return NatsTarget(scheme, tuple(servers), stream, name)


def load_auth(environ: dict[str, str] | os._Environ[str] | None = None) -> NatsAuth:
    """The credentials ``WARMUP_NATS_CREDS`` names (none if unset): a NATS creds file (JWT), or a
    file whose first line is ``user:password`` or a bare token."""
    env = os.environ if environ is None else environ
    path = env.get(CREDS_ENV, "").strip()
    if not path:
        return NatsAuth()
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise UsageError(f"the NATS credentials file {path} (WARMUP_NATS_CREDS) does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not readable text"
        raise UsageError(f"cannot read the NATS credentials file {path} (WARMUP_NATS_CREDS): {reason}") from None
    if _JWT_MARK in text:
        return NatsAuth(path, (("user_credentials", path),))
    first = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not first:
        raise UsageError(f"the NATS credentials file {path} (WARMUP_NATS_CREDS) is empty")
    if ":" in first:
        user, _, password = first.partition(":")
        return NatsAuth(path, (("user", user), ("password", password)))
    return NatsAuth(path, (("token", first),))
