from __future__ import annotations

import orjson
from starlette.responses import Response


def json_response(content, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json", headers=headers)


def success(data, status: int = 200, headers: dict[str, str] | None = None, **extra) -> Response:
    """Seed 004's envelope, `{"status": "success", "data": …}`, with any sibling of `data` (`pagination`)."""
    return json_response({"status": "success", "data": data, **extra}, status, headers)
