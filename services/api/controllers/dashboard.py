"""The dashboard's static shell: ``/`` (index.html), ``/static/*`` (its JS, CSS and the
vendored libraries), ``/favicon.ico``, and how ``/schema`` renders: Swagger UI from the
vendored copy in ``/static/vendor/swagger-ui`` (never a CDN), with ``/schema/redoc``
sent there too. Public: they hold no fleet data; the page asks for the token and sends
it as a bearer header on every API call."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from litestar import MediaType, Response, get
from litestar.openapi.plugins import OpenAPIRenderPlugin, SwaggerRenderPlugin
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

from services.api.auth import PUBLIC

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
STATIC_DIR = WEB_DIR / "static"
SWAGGER = "/static/vendor/swagger-ui"
FAVICON_LINK = "<link rel='icon' type='image/svg+xml' href='/favicon.ico'>"


@get("/", opt=PUBLIC, include_in_schema=False, media_type=MediaType.HTML)
async def index() -> Response[bytes]:
    return Response(
        _read("index.html"),
        media_type=MediaType.HTML,
        headers={"Cache-Control": "no-store"},
    )


@get("/favicon.ico", opt=PUBLIC, include_in_schema=False)
async def favicon() -> Response[bytes]:
    return Response(
        _read("static/favicon.svg"),
        media_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@get("/schema/redoc", opt=PUBLIC, include_in_schema=False)
async def redoc() -> Redirect:
    """ReDoc is not vendored: its address leads to the (local) Swagger UI."""
    return Redirect("/schema/swagger")


@lru_cache(maxsize=4)
def _read(name: str) -> bytes:
    return (WEB_DIR / name).read_bytes()


def schema_render_plugins() -> list[OpenAPIRenderPlugin]:
    """``/schema`` and ``/schema/swagger``: Swagger UI from the vendored files."""
    return [
        SwaggerRenderPlugin(
            js_url=f"{SWAGGER}/swagger-ui-bundle.js",
            css_url=f"{SWAGGER}/swagger-ui.css",
            standalone_preset_js_url=f"{SWAGGER}/swagger-ui-standalone-preset.js",
            favicon=FAVICON_LINK,
        )
    ]


static_router = create_static_files_router(
    path="/static", directories=[STATIC_DIR], opt=PUBLIC, name="dashboard-static"
)
