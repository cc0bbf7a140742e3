"""``GET /docs``: the interactive API reference (Swagger UI) over ``/api/openapi.json``.

The Swagger UI assets come from the ``swagger-ui-py`` package (Apache-2.0; its LICENSE is
served beside them at ``/docs/assets/LICENSE``) and are served from here: no CDN. The
OpenAPI document stays the single source; the page only points Swagger UI at it. With a
token configured the page needs a dashboard session, and "Try it out" requests carry the
session's CSRF token.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import jinja2
from aiohttp import web

from tradingbot.web.openapi import OPENAPI_PATH

DOCS_PATH: Final = "/docs"
ASSETS_PATH: Final = "/docs/assets"
ASSETS: Final = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"})
# Swagger UI sets inline styles and draws data: images; scripts still come from here only.
DOCS_CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)


def swagger_ui_dir() -> Path | None:
    """The folder of Swagger UI's files in the installed package (None: not installed)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def add_docs_routes(
    app: web.Application,
    env: jinja2.Environment,
    common: Callable[[web.Request], dict[str, Any]],
) -> None:
    """Register ``/docs`` and its assets."""
    folder = swagger_ui_dir()

    async def docs(request: web.Request) -> web.Response:
        """``GET /docs``: the Swagger UI page."""
        context = {
            **common(request),
            "title": "API reference",
            "openapi_path": OPENAPI_PATH,
            "available": folder is not None,
            "assets": ASSETS_PATH,
        }
        return web.Response(
            text=env.get_template("docs.html").render(context),
            content_type="text/html",
            charset="utf-8",
            headers={"Cache-Control": "no-store", "Content-Security-Policy": DOCS_CSP},
        )

    async def asset(request: web.Request) -> web.StreamResponse:
        """``GET /docs/assets/{name}``: one of Swagger UI's files."""
        name = request.match_info["name"]
        if folder is None or name not in ASSETS:
            raise web.HTTPNotFound()
        response = web.FileResponse(folder / name)
        if name == "LICENSE":
            response.content_type = "text/plain"
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response

    app.router.add_get(DOCS_PATH, docs)
    app.router.add_get(ASSETS_PATH + "/{name}", asset)
