"""Default locations (``$WARMUP_LOG`` / ``$WARMUP_DB``, else under ``./warmup-data/``), and private folders.

Invariant: every folder warmup creates (the log's and database's folder, ``<log>.d/`` and its
subfolders, the artifacts tree, storage-state folders) is created mode 0700 whatever the umask, as
its files are 0600: they hold account ids, screenshots and session cookies. Folders that already
exist are left as they are: their owner chose their mode.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_LOG = "warmup-data/events.jsonl"
DEFAULT_DB = "warmup-data/warmup.db"
DEFAULT_ARTIFACTS = "warmup-data/artifacts"

PRIVATE_DIR_MODE = 0o700


def make_private_dir(path: str | os.PathLike[str]) -> None:
    """Create ``path`` and its missing parents with mode 0700 (``mkdir -p -m 700`` for every level).

    ``Path.mkdir(mode=..., parents=True)`` gives the parents the umask's mode (0777 under umask
    000); this creates each missing level itself. The umask can only remove bits from 0700, never
    add any, so a stricter umask is honoured.
    """
    path = Path(path)
    missing: list[Path] = []
    at = path
    while not at.is_dir():
        missing.append(at)
        if at.parent == at:
            break
        at = at.parent
    for level in reversed(missing):
        try:
            os.mkdir(level, PRIVATE_DIR_MODE)
        except FileExistsError:
            if not level.is_dir():  # a file (or a dangling symlink) where a folder must go
                raise NotADirectoryError(20, "Not a directory", str(level)) from None


STREAM_SCHEMES = ("nats://", "tls://")


def is_stream_url(spec: object) -> bool:
    """Whether ``spec`` (a ``--log`` value) names a stream (``nats://HOST:PORT/STREAM``) rather than a file."""
    return isinstance(spec, str) and spec.lower().startswith(STREAM_SCHEMES)
