"""The run events' wire format and how the OpenAPI document shows the stream."""
from __future__ import annotations

import orjson

from api.app import ROUTERS
from api.operations.events import PATH, frame
from api.web.openapi import openapi_document


def test_a_frame_is_one_named_event_with_its_json_on_one_data_line():
    data = {"id": 7, "result": "running", "message": "two\nlines"}
    event = frame("run", data)
    assert event.endswith(b"\n\n") and event.count(b"\n") == 3  # a newline in the data stays escaped
    name, payload = event.decode().split("\n")[:2]
    assert name == "event: run" and orjson.loads(payload.removeprefix("data: ")) == data


def test_the_stream_is_documented_as_text_event_stream_behind_a_token():
    op = openapi_document([route for router in ROUTERS for route in router.routes])["paths"][PATH]["get"]
    assert list(op["responses"]["200"]["content"]) == ["text/event-stream"]
    assert op["security"] == [{"bearer": []}]
    assert {"401", "404"} <= op["responses"].keys()
    assert op["parameters"][0]["name"] == "id"
