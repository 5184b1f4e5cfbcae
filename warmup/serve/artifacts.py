"""``GET /artifacts/PATH``: a screenshot or a trace from ``--artifacts``, and nothing outside it.

Invariant: the file served is a regular file whose real path (symlinks resolved) lies inside the
real path of ``--artifacts``. ``..`` in any spelling (Starlette has already decoded ``%2e%2e``), an
absolute path, a NUL, or a symlink that points out all end as the same 404 as a missing file, so a
probe learns nothing. Images are served as images; anything else (a trace's zip) as a download,
never as a page of this origin.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response

from warmup.serve.state import serve_state

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


def resolve_inside(root: Path, relative: str) -> Path | None:
    """The file ``relative`` names under ``root``, or None if it is not a regular file inside it."""
    if not relative or "\x00" in relative or "\\" in relative:
        return None
    parts = PurePosixPath(relative)
    if parts.is_absolute() or any(p in ("..", ".") for p in parts.parts):
        return None
    try:
        real_root = root.resolve(strict=True)
        target = (real_root / parts).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not target.is_relative_to(real_root) or not target.is_file():
        return None
    return target


async def artifact(request: Request) -> Response:
    state = serve_state(request)
    target = await to_thread.run_sync(resolve_inside, state.artifacts, request.path_params["path"])
    if target is None:
        return PlainTextResponse("no such artifact\n", status_code=404)
    media = IMAGE_TYPES.get(target.suffix.lower())
    if media is not None:
        return FileResponse(target, media_type=media, content_disposition_type="inline",
                            headers={"Cache-Control": "private, max-age=3600"})
    return FileResponse(target, media_type="application/octet-stream", filename=target.name)
