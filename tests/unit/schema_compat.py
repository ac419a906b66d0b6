"""Would a consumer written against an old JSON Schema break on what the new one allows?

The rules of docs/asyncapi.yaml's compatibility policy, as a check: a field may be added when it
is optional; nothing else may change. Removing a field, requiring one (old events on the log lack
it), no longer requiring one (an old consumer counts on it), changing a type, an enum, a const or
the alternatives of a union: each breaks someone, and is a new version of the type instead.
"""
from __future__ import annotations

from typing import Any

# Words about a value, not constraints on it: they may change freely.
ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$id", "$schema", "$defs", "discriminator"})
UNIONS = ("anyOf", "oneOf", "allOf", "prefixItems")
NESTED = ("items", "additionalProperties")
STRUCTURE = frozenset({*UNIONS, *NESTED, "properties", "required"})


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What about `new` breaks a consumer of `old` (two whole schemas, $defs and all); [] if nothing."""
    return _compare(old, new, "data", (old, new))


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:  # pydantic writes only local references: #/$defs/Name
        node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _compare(old: dict[str, Any], new: dict[str, Any], path: str, roots: tuple[dict, dict]) -> list[str]:
    o, n = _resolve(old, roots[0]), _resolve(new, roots[1])
    if "properties" in o or "properties" in n:
        return _compare_object(o, n, path, roots)
    out = []
    for key in UNIONS:
        if key in o or key in n:
            before, after = o.get(key, []), n.get(key, [])
            if len(before) != len(after):
                out.append(f"{path}: {key} had {len(before)} alternatives, has {len(after)}")
                continue
            for i, (a, b) in enumerate(zip(before, after, strict=True)):
                out += _compare(a, b, f"{path}<{key} {i}>", roots)
    for key in NESTED:
        before, after = o.get(key), n.get(key)
        if isinstance(before, dict) and isinstance(after, dict):
            out += _compare(before, after, f"{path}[{key}]", roots)
        elif before != after:
            out.append(f"{path}: {key} was {before!r}, is {after!r}")
    rest_o, rest_n = _constraints(o), _constraints(n)
    if rest_o != rest_n:
        out.append(f"{path}: was {rest_o}, is {rest_n}")
    return out


def _compare_object(o: dict[str, Any], n: dict[str, Any], path: str, roots: tuple[dict, dict]) -> list[str]:
    before, after = o.get("properties", {}), n.get("properties", {})
    required_before, required_after = set(o.get("required", [])), set(n.get("required", []))
    out = []
    for name, schema in before.items():
        if name not in after:
            out.append(f"{path}.{name}: removed")
        else:
            out += _compare(schema, after[name], f"{path}.{name}", roots)
    out += [f"{path}.{name}: now required" for name in sorted(required_after - required_before)]
    out += [f"{path}.{name}: no longer required" for name in sorted(required_before - required_after)]
    if n.get("additionalProperties") is False:
        out.append(f"{path}: refuses added fields (additionalProperties: false)")
    out += [f"{path}: {c}" for c in _differences(_constraints(o), _constraints(n))]
    return out


def _constraints(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k not in ANNOTATIONS and k not in STRUCTURE}


def _differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [f"{k} was {before.get(k)!r}, is {after.get(k)!r}" for k in sorted({*before, *after})
            if before.get(k) != after.get(k)]
