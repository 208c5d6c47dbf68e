"""The status page (``GET /ui``), its static files, and the event log (``GET /v1/events``).

The page is plain HTML, CSS and JavaScript from ``deployments/static``: no
build step, nothing from another origin (the Content-Security-Policy below
refuses anything else, so a stray CDN link would show as a console error in
the browser test). It reads the JSON endpoints every few seconds and changes
nothing: it has no admin action, so it needs no token and offers none.

``/`` redirects to the page; the route is mounted last so it claims only what
no other route does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from deployments.events import DEFAULT_LIMIT, MAX_LIMIT, EventLog, parse_query
from deployments.http_api import error_response, json_response, route
from providers.errors import InvalidRequestError

STATIC_DIR = Path(__file__).resolve().parent / "static"
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".txt": "text/plain; charset=utf-8"}
# Only the page's own origin, and no inline script or style: data from providers
# (names, errors) reaches the DOM as text only, and this stops anything else.
_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate: a new registry version serves its new page at once
}

EVENTS_PARAMS = {"parameters": [
    {"name": "since", "in": "query", "required": False,
     "description": "Only events after this time (unix seconds).", "schema": {"type": "number"}},
    {"name": "limit", "in": "query", "required": False,
     "description": f"At most this many events, newest first (default {DEFAULT_LIMIT}).",
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
]}


def _load_static() -> dict[str, tuple[bytes, str]]:
    """Every file of the page, read once: a fixed set, so no request names a path on disk."""
    files = {}
    for path in sorted(STATIC_DIR.iterdir()) if STATIC_DIR.is_dir() else ():
        media = _TYPES.get(path.suffix)
        if path.is_file() and media is not None:
            files[path.name] = (path.read_bytes(), media)
    return files


class UiRoutes:
    def __init__(self, events: EventLog | None) -> None:
        # None: an app built without a router (the spec, unit tests): an empty log answers.
        self.events = events if events is not None else EventLog("none")
        self.files = _load_static()

    @route("GET", "/v1/events", openapi_extra=EVENTS_PARAMS)
    async def http_events(self, request: Request) -> Response:
        """Registrations, swaps, reloads, rollbacks, breaker opens and closes, health
        changes: every router replica's, newest first."""
        params = request.query_params
        try:
            since, limit = parse_query(params.get("since"), params.get("limit"))
        except InvalidRequestError as exc:
            return error_response(exc.http_status, str(exc), exc.field, "invalid_request")
        return json_response(await self.events.read(since, limit))

    @route("GET", "/ui", include_in_schema=False)
    async def page(self) -> Response:
        return self._file("ui.html")

    @route("GET", "/ui/{name}", include_in_schema=False)
    async def static(self, name: str) -> Response:
        return self._file(name)

    @route("GET", "/", include_in_schema=False)
    async def root(self, request: Request) -> Response:
        query = request.url.query  # kept: /?refresh=2 opens the page with its options
        return RedirectResponse("/ui" + (f"?{query}" if query else ""), status_code=307)

    def _file(self, name: str) -> Response:
        found: Any = self.files.get(name)
        if found is None:
            return error_response(404, f"no file {name[:100]!r} in the status page", "name", "not_found")
        body, media = found
        return Response(body, media_type=media, headers=_HEADERS)
