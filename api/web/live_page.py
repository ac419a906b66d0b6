"""GET /: the live page, plain HTML, CSS and JavaScript from api/web/live (no build step, no CDN).

The page itself holds no data: it asks for a token (kept in the tab's sessionStorage) and reads the
API with it in the Authorization header, progress from GET /api/operations/{id}/events."""
from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "live"


async def live_page(_request: Request):
    """The status page: scans, their live progress, violations and findings, coverage."""
    return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


routes = [Route("/", live_page, include_in_schema=False),
          Mount("/live", StaticFiles(directory=STATIC), name="live-static")]
