"""Regexes are run by the scan engine with pyarrow.compute, that is RE2: check them with RE2 too.

Python's `re` accepts look-arounds and back-references that RE2 refuses (a scan would fail
later), and refuses some RE2 syntax (\\pL) that the engine runs, so the engine itself decides.
"""
from __future__ import annotations

import functools

import pyarrow as pa
import pyarrow.compute as pc

MAX_REGEX = 1000  # characters
_ONE = pa.array([""], pa.string())  # RE2 compiles only when there is a value to match


@functools.lru_cache(maxsize=1024)
def re2_error(regex: str) -> str | None:
    """Why RE2 cannot run `regex` (as pc.match_substring_regex does), or None when it can."""
    try:
        pc.match_substring_regex(_ONE, regex)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        return str(exc).removeprefix("Invalid regular expression: ")
    return None
