"""The words the ledger shares, each written once: scan states, severities, event sources.

A scan's state on the ledger (the coordinator's lifecycle, the read models, the API) is one
of `STATUSES`. The seeds' own names for these states are views of them and stay beside the
views that show them (each family's views.py under api/).

    queued ──▶ running ──▶ completed | partial_failure | failed   (TERMINAL)
       │          │
       └──────────┴──▶ aborted                  (FINISHED = TERMINAL + aborted)

Pure: no imports of the project, so every layer can use it.
"""
from __future__ import annotations

from typing import Literal

Status = Literal["queued", "running", "completed", "partial_failure", "failed", "aborted"]

QUEUED: Status = "queued"
RUNNING: Status = "running"
COMPLETED: Status = "completed"
PARTIAL_FAILURE: Status = "partial_failure"
FAILED: Status = "failed"
ABORTED: Status = "aborted"

TerminalStatus = Literal["completed", "partial_failure", "failed"]  # the status scan.finished reports

STATUSES: tuple[Status, ...] = (QUEUED, RUNNING, COMPLETED, PARTIAL_FAILURE, FAILED, ABORTED)
IN_FLIGHT: tuple[Status, ...] = (QUEUED, RUNNING)
# A terminal scan has its scan.finished (and a score if completed); an aborted one has not, and can
# still resume, as failed and partial_failure can.
TERMINAL: tuple[Status, ...] = (COMPLETED, PARTIAL_FAILURE, FAILED)
# No longer in flight: what the read side calls finished (results shown once finalized).
FINISHED: tuple[Status, ...] = (*TERMINAL, ABORTED)

Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")
DEFAULT_SEVERITY: Severity = "medium"

FindingStatus = Literal["open", "resolved", "dismissed"]  # a finding's (violation's) review state

# The `source` of the events each part of the system writes (CloudEvents).
API_SOURCE = "scanledger/api"
COORDINATOR_SOURCE = "scanledger/coordinator"
EVALUATOR_SOURCE = "scanledger/evaluator"
BYOC_WORKER_SOURCE = "scanledger/byoc-worker"  # a BYOC worker's report, written by the API


def sql_list(values: tuple[str, ...]) -> str:
    """A tuple of these fixed words as an SQL list literal: ('a', 'b'). Only for the constants above."""
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"
