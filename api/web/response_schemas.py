"""What each operation answers on success, as JSON Schema: the registry the families fill from their own
`schemas` module (next to the views that build the bodies) and the building blocks they use. Every object
is open to added fields, so the API can grow; a field the answer may leave out is not in `required`."""
from __future__ import annotations

RESPONSES: dict[tuple[str, str, str], dict] = {}  # (method, path, status or "" for every success)

STR, INT, NUM, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}
ANY_OBJ = {"type": "object"}  # a free-form object: a mapping, a rule's params, an event's data
TIME = {"type": "string", "description": "ISO 8601"}


def nullable(schema: dict) -> dict:
    """`schema` or null: ["string", "null"] for a plain type, else anyOf it and null."""
    if set(schema) <= {"type", "description", "format"} and isinstance(schema.get("type"), str):
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict, optional: tuple[str, ...] = ()) -> dict:
    """An object with these properties, all required but the `optional` ones; more fields are allowed."""
    return {"type": "object", "required": [k for k in properties if k not in optional], "properties": properties}


def array(items: dict) -> dict:
    return {"type": "array", "items": items}


def counts() -> dict:
    """{name: count}."""
    return {"type": "object", "additionalProperties": INT}


def listing(item: dict) -> dict:
    """`{items, total}`: a whole list."""
    return obj({"items": array(item), "total": INT})


def page(item: dict) -> dict:
    """Seed 003's page: `{items, total, page, size, pages}`."""
    return obj({"items": array(item), "total": INT, "page": INT, "size": INT, "pages": INT})


PAGINATION = obj({"limit": INT, "next_cursor": nullable(STR)})


def envelope(data: dict, paged: bool = False) -> dict:
    """Seed 004's envelope, every /api/v1 answer: `{status: success, data}`, a cursor page's `pagination`."""
    return obj({"status": {"const": "success"}, "data": data, **({"pagination": PAGINATION} if paged else {})})


def answers(method: str, path: str, schema: dict, status: str = "") -> None:
    """Register the schema of an operation's success answer (its 2xx body; one `status` of several) for the
    document."""
    RESPONSES[(method.lower(), path, status)] = schema


def answer_schema(method: str, path: str, status: str) -> dict | None:
    return RESPONSES.get((method, path, status)) or RESPONSES.get((method, path, ""))


def from_model(model) -> dict:
    """A pydantic model's schema as an answer gives it (model_dump), open to added fields."""
    return _open(model.model_json_schema(mode="serialization"))


def _open(schema):
    if isinstance(schema, list):
        return [_open(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    return {k: _open(v) for k, v in schema.items() if k != "title" and (k, v) != ("additionalProperties", False)}
