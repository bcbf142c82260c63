"""The browser assets under ``web/static``: the demo page, the dashboard and the widget.

    GET /            the demo page, which embeds the widget (off in production unless
                     ``demo_page`` is set, and then rate-limited per client address)
    GET /dashboard   the 3D dashboard
    GET /widget.js   the embeddable voice widget's loader
    GET /static/...  the modules, styles and vendored three.js they load

The widget runs on other sites' pages, so its files are served with
``Access-Control-Allow-Origin: *``: module imports and AudioWorklet scripts are fetched in
CORS mode (HTML, "fetch a single module script"; Web Audio API, ``addModule``).
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

import web
from gateway.limits import LimitExceeded, RateLimiter, check_rate, client_address

STATIC = Path(web.__file__).parent / "static"
VENDOR_THREE = STATIC / "vendor" / "three.module.js"


class _CorsStatic(StaticFiles):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"access-control-allow-origin", b"*"))
                headers.append((b"cache-control", b"no-cache"))
                message = {**message, "headers": headers}
            await send(message)

        await super().__call__(scope, receive, send_with_cors)


def static_files() -> StaticFiles:
    return _CorsStatic(directory=STATIC)


DEMO_WIDGET = 'data-caller="demo-page"'
DEMO_OFF = (
    "Not found. This gateway runs in production mode, where the demo page (which hands a "
    "call token to anyone who loads it) is off; VOXGATE_DEMO_PAGE=true turns it on.\n"
)


def pages_router(
    mint_widget_token: Callable[[], str] | None = None,
    *,
    demo_page: bool = True,
    demo_limiter: RateLimiter | None = None,
) -> APIRouter:
    """``mint_widget_token`` signs a fresh call token into the demo page each time it is
    served, so a new user can press "call" on ``make run``'s page with no set-up. Since
    that lets any script open calls, production serves no demo page unless ``demo_page``,
    and ``demo_limiter`` caps the views per client address."""
    router = APIRouter(tags=["pages"])
    demo_html = (STATIC / "index.html").read_text(encoding="utf-8")

    @router.get("/", include_in_schema=False)
    async def demo(request: Request) -> Response:
        if not demo_page:
            return PlainTextResponse(DEMO_OFF, status_code=404)
        try:
            check_rate(demo_limiter, client_address(request), "demo pages from this address")
        except LimitExceeded as exc:
            return PlainTextResponse(
                f"{exc}\n", status_code=429, headers={"retry-after": str(exc.retry_after)}
            )
        html = demo_html
        if mint_widget_token is not None:
            token = escape(mint_widget_token(), quote=True)
            html = html.replace(DEMO_WIDGET, f'{DEMO_WIDGET} data-token="{token}"', 1)
        return HTMLResponse(html, headers={"cache-control": "no-store"})

    @router.get("/dashboard", include_in_schema=False)
    async def dashboard() -> Response:
        if not VENDOR_THREE.is_file():
            return PlainTextResponse(
                f"the dashboard needs three.js in {VENDOR_THREE.parent}: run `make install` "
                "(or `npm ci` in web/)",
                status_code=503,
            )
        return FileResponse(
            STATIC / "dashboard" / "index.html", headers={"cache-control": "no-cache"}
        )

    @router.get("/widget.js", include_in_schema=False)
    async def widget() -> FileResponse:
        return FileResponse(
            STATIC / "widget.js",
            media_type="text/javascript",
            headers={"access-control-allow-origin": "*", "cache-control": "no-cache"},
        )

    return router
