"""GET /docs: Swagger UI over /openapi.json, from the swagger-ui-py wheel's static files (no CDN, no build)."""
from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

# Located, not imported: the package's __init__ pulls in its framework adapters (jinja2, yaml).
STATIC = Path(find_spec("swagger_ui").origin).parent / "static"

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>scan-ledger API</title>
  <link rel="stylesheet" href="/docs/static/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/static/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", validatorUrl: null,
                                 persistAuthorization: false});
  </script>
</body>
</html>
"""


async def docs(_request: Request):
    """The API's documentation: Swagger UI over /openapi.json."""
    return HTMLResponse(PAGE)


routes = [Route("/docs", docs, include_in_schema=False),
          Mount("/docs/static", StaticFiles(directory=STATIC), name="docs-static")]
