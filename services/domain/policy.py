"""Policy-level checks that the API makes before a scan is requested."""
from __future__ import annotations

from services.domain.rules import Rule, resolve_column

GROUP_RULES = {"velocity", "structuring"}


def referenced_fields(rule: Rule) -> list[str]:
    params = rule.params
    fields = [params[k] for k in ("field", "group_by") if isinstance(params.get(k), str)]
    fields += list(params.get("fields") or [])
    if rule.type in GROUP_RULES:
        fields += [params.get("field") or "amount", "timestamp"]
    return list(dict.fromkeys(fields))


def missing_columns(rule: Rule, mapping: dict[str, str], columns: list[str]) -> list[str]:
    available = set(columns)
    return [f for f in referenced_fields(rule) if resolve_column(f, mapping) not in available]
