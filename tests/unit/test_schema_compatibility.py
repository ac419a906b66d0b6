"""The compatibility policy of docs/asyncapi.yaml, held: the published schemas name themselves,
accept added fields, and break no consumer of the schemas first published (tests/fixtures)."""
import copy
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator

from services.domain import contracts as c
from tests.unit.schema_compat import breaking_changes

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED, BASELINE = ROOT / "docs" / "schemas", ROOT / "tests" / "fixtures" / "published-schemas"


def schemas(folder: Path) -> dict[str, dict]:
    return {p.stem: orjson.loads(p.read_bytes()) for p in folder.glob("*.json")}


def test_no_published_schema_breaks_a_consumer_of_the_first_published():
    current, baseline = schemas(PUBLISHED), schemas(BASELINE)
    assert baseline and set(baseline) <= set(current), "a published type was removed: publish a new version instead"
    broken = {type_: found for type_, old in baseline.items() if (found := breaking_changes(old, current[type_]))}
    assert broken == {}, "breaking changes: publish a new version of the type (….v2) instead"


def test_each_schema_names_itself_and_its_dialect_and_is_valid():
    for type_, schema in schemas(PUBLISHED).items():
        assert schema["$schema"] == c.SCHEMA_DIALECT and schema["$id"] == c.schema_id(type_)
        Draft202012Validator.check_schema(schema)


def closed(schema) -> list:
    """Where a schema refuses added fields."""
    if isinstance(schema, dict):
        here = [schema] if schema.get("additionalProperties") is False else []
        return here + [x for v in schema.values() for x in closed(v)]
    return [x for v in schema for x in closed(v)] if isinstance(schema, list) else []


def finding() -> dict:
    return {"finding_id": "f-1", "scan_id": "s-1", "unit_id": "u-1", "connector_id": "c-1", "file": "a.txt",
            "line": 1, "start": 0, "end": 5, "detector": "email", "family": "contact", "confidence": 0.9,
            "masked": "j***@example.com"}


def test_a_consumer_holding_a_schema_accepts_an_event_that_gained_a_field():
    assert [t for t, s in schemas(PUBLISHED).items() if closed(s)] == []
    validator = Draft202012Validator(schemas(PUBLISHED)[c.FINDING_DETECTED])
    assert c.FindingDetected.model_validate(finding())  # the sample is a real finding
    validator.validate({**finding(), "added_later": {"any": "thing"}})


VIOLATION = schemas(BASELINE)[c.VIOLATION_DETECTED]


def changed(edit) -> dict:
    schema = copy.deepcopy(VIOLATION)
    edit(schema)
    return schema


@pytest.mark.parametrize(("edit", "found"), [
    (lambda s: s["properties"].pop("rule_name"), "data.rule_name: removed"),
    (lambda s: s["required"].append("container_id"), "data.container_id: now required"),
    (lambda s: s["required"].remove("account"), "data.account: no longer required"),
    (lambda s: s["properties"].update(record_key={"type": "integer"}), "data.record_key: was {'type': 'string'}"),
    (lambda s: s["properties"]["account"]["anyOf"].pop(), "data.account: anyOf had 2 alternatives, has 1"),
    (lambda s: s["properties"]["severity"]["enum"].remove("low"), "data.severity: was {'enum'"),
    (lambda s: s["properties"]["record"]["anyOf"][0].update(additionalProperties={"type": "integer"}),
     "data.record<anyOf 0>[additionalProperties]: was {'type': 'string'}, is {'type': 'integer'}"),
    (lambda s: s.update(additionalProperties=False), "data: refuses added fields"),
])
def test_a_change_that_breaks_an_old_consumer_is_caught(edit, found):
    assert any(f.startswith(found) for f in breaking_changes(VIOLATION, changed(edit))), \
        breaking_changes(VIOLATION, changed(edit))


def test_what_the_policy_allows_is_not_a_break():
    added = changed(lambda s: s["properties"].update(added_later={"type": "string"}))
    reworded = changed(lambda s: s["properties"]["rule_name"].update(title="Rule", description="its name"))
    assert breaking_changes(VIOLATION, added) == breaking_changes(VIOLATION, reworded) == []


def test_a_break_inside_a_shared_definition_is_caught():
    old = schemas(BASELINE)[c.CONFIG_CHANGED]
    new = copy.deepcopy(old)
    del new["$defs"]["ConfigRow"]["properties"]["key"]
    assert breaking_changes(old, new) == ["data.changes[items].key: removed"]
