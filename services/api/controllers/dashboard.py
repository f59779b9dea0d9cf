"""The dashboard's static shell: ``/`` (index.html) and ``/static/*`` (its JS, CSS and the
vendored charting library). Public: they hold no fleet data; the page asks for the
token and sends it as a bearer header on every API call."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from litestar import MediaType, Response, get
from litestar.static_files import create_static_files_router

from services.api.auth import PUBLIC

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
STATIC_DIR = WEB_DIR / "static"


@get("/", opt=PUBLIC, include_in_schema=False, media_type=MediaType.HTML)
async def index() -> Response[bytes]:
    return Response(
        _index_html(),
        media_type=MediaType.HTML,
        headers={"Cache-Control": "no-store"},
    )


@lru_cache(maxsize=1)
def _index_html() -> bytes:
    return (WEB_DIR / "index.html").read_bytes()


static_router = create_static_files_router(
    path="/static", directories=[STATIC_DIR], opt=PUBLIC, name="dashboard-static"
)
