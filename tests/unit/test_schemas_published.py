"""The JSON Schemas in docs/schemas are the published contract: they must match the models."""
from pathlib import Path

import orjson

from services.domain.contracts import json_schemas

DOCS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def test_published_schemas_match_the_models():
    published = {p.stem: orjson.loads(p.read_bytes()) for p in DOCS.glob("*.json")}
    assert published == json_schemas(), "run `scanledger schemas` and commit docs/schemas"
