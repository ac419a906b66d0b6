"""The kinds' way to their I/O half without importing it up front (see services.kinds)."""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def runner(module: str, function: str) -> Callable[..., Any]:
    """A function of a runner module (services.unit_runner, services.target_runner), imported when called."""
    return getattr(importlib.import_module(module), function)
