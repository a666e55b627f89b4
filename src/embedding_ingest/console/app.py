"""The console's ASGI app: the JSON API, the action endpoints, and the static single-page UI.

Starlette rather than FastAPI or Flask: it is the small ASGI toolkit uvicorn is built to serve (both
already come with chromadb's dependencies), with routing, static files and a TestClient and nothing
more; FastAPI would add pydantic-driven schemas and OpenAPI pages a local console does not need, and
Flask would bring a second (WSGI) server stack.

Hardening, for a server that exposes a workspace: only Host headers naming this machine (its names,
or any IP address) are served, so a DNS-rebinding page cannot read the API; a strict
Content-Security-Policy (scripts and styles only from here, no inline script), no framing, and no
caching of API answers.
"""

from __future__ import annotations

import ipaddress
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from embedding_ingest.console import actions, api, dashboard
from embedding_ingest.exceptions import (
    ConfigurationError,
    EmbeddingIngestError,
    InvalidInputError,
    TransientError,
)

STATIC_DIR = Path(__file__).parent / "static"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
SECURITY_HEADERS = {
    b"content-security-policy": b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' "
                                b"data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
                                b"frame-ancestors 'none'",
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"no-referrer",
}


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response, and `Cache-Control: no-store` to /api/ answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_api = scope["path"].startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(SECURITY_HEADERS.items())
                if is_api:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _host_name(header: str) -> str:
    """The host of a Host header without its port: "127.0.0.1:8470" -> "127.0.0.1", "[::1]:8470" -> "::1"."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostCheck:
    """Serves a request only when its Host header is one of `allowed` or an IP address; anything else is
    400. A DNS-rebinding page (attacker.example re-pointed at 127.0.0.1) always sends its own domain
    name, never an IP address; and an IP address is how other machines reach a console started with
    --host 0.0.0.0, which Starlette's TrustedHostMiddleware (names only) would have refused."""

    def __init__(self, app: ASGIApp, allowed: tuple[str, ...]) -> None:
        self.app = app
        self.allowed = frozenset(name.strip("[]").lower() for name in allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            header = Headers(scope=scope).get("host", "")
            name = _host_name(header).lower()
            if name not in self.allowed and not _is_ip_address(name):
                refused = JSONResponse({"error": "InvalidHost",
                                        "message": f"Host {header!r} is not served: open the console by "
                                                   "this machine's address or name"}, status_code=400)
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _info(request: Request) -> JSONResponse:
    """GET /api/info - which backend, whether actions are allowed, the package version."""
    console: api.Console = request.app.state.console
    try:
        package_version = version("embedding-ingest")
    except PackageNotFoundError:
        package_version = "unknown"
    return JSONResponse({"backend": console.source.backend, "actions_allowed": console.allow_actions,
                         "objects": console.objects.location, "version": package_version})


def _index(_request: Request) -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers={"cache-control": "no-store"})


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, api.ApiError)
    return api.error_response(exc)


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    """Our own errors keep their one-line message: bad input 400, a backend unreachable 502, the console
    not configured for its backend (no state machine found...) 503."""
    status = 400 if isinstance(exc, InvalidInputError) else 502 if isinstance(exc, TransientError) \
        else 503 if isinstance(exc, ConfigurationError) else 500
    return JSONResponse({"error": type(exc).__name__, "message": str(exc)}, status_code=status)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": "HTTPError", "message": exc.detail}, status_code=exc.status_code)


def create_app(console: api.Console, *, allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS) -> Starlette:
    """The console app over `console`'s ports. `allowed_hosts` are the host names served besides IP
    addresses (add this machine's names when it listens beyond loopback)."""
    routes = [Route("/", _index), Route("/api/info", _info), *api.ROUTES, *dashboard.ROUTES,
              *actions.ROUTES,
              Mount("/static", StaticFiles(directory=STATIC_DIR), name="static")]
    app = Starlette(routes=routes,
                    middleware=[Middleware(SecurityHeaders),
                                Middleware(HostCheck, allowed=allowed_hosts)],
                    exception_handlers={api.ApiError: _api_error, EmbeddingIngestError: _domain_error,
                                        HTTPException: _http_error})
    app.state.console = console
    return app
