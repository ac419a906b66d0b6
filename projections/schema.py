"""Kept for the tests and the fault harness that import it: the schema is services.read_models."""
from __future__ import annotations

from services.read_models import READ_MODEL_TABLES, SCHEMA, TABLES, create, drop

__all__ = ["READ_MODEL_TABLES", "SCHEMA", "TABLES", "create", "drop"]
