"""What every scan kind says about itself: its flags, and the rules where kinds differ.

A kind is a frozen dataclass: the flags are its fields, set once where the kind is defined;
the methods below are the rules every kind follows unless it says otherwise (a sensitive-data
scan overrides how it ends, when a resume is refused, and which of its chunks are overdue).
The lifecycle, the coordinator and the API ask the kind and never test which kind it is.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    """How a scan is split: its unit plans (contracts.UnitPlan), and for a scan that first lists its
    sources, what the listing found (it goes on the ledger with scan.started)."""
    units: list[dict]
    enumeration: dict | None = None


@dataclass(frozen=True)
class Kind:
    name: str                  # the `kind` on the ledger: ScanRequest, WorkUnit, rm_scans.kind
    label: str                 # what a message calls one run of it ("a sync cannot be resumed")
    operation_type: str = "scan"  # its `type` in the Activity list (seed 003)
    scan_id_prefix: str = ""   # how its scan ids begin ("scan-" for seed 004's, as in its "scan-par-001")
    resumable: bool = True     # an aborted or failed run can continue its remaining units (else: rerun it)
    asset_runs: bool = False   # its units are the per-asset runs of the Monitor Dashboard (seed 000)
    has_delta: bool = False    # a completed run gets a delta against the previous run of its policy (seed 001)

    def checks(self, request: dict) -> list[dict]:
        """What the scan evaluates: rule or monitor snapshots, each with an id and a severity."""
        raise NotImplementedError

    def work(self, cause: dict, request: dict, units: list[dict], attempt: int = 0) -> list[dict]:
        """The work.unit events of `units`; `cause` is the RunScan or ResumeScan command."""
        raise NotImplementedError

    def outcome(self, state: dict) -> str:
        """The lifecycle action that ends a scan whose units have all reported: complete when none
        failed (or there were none), fail when all did, partial_failure in between."""
        units = state["units"].values()
        if not any(u["status"] == "failed" for u in units):
            return "complete"
        return "partial_failure" if any(u["status"] == "completed" for u in units) else "fail"

    def resume_refused(self, request: dict, now: str) -> str | None:
        """Why a resume of this run would be refused beyond the lifecycle's own rules (None: it is not)."""
        return None

    def overdue(self, state: dict, now: str, grace_s: float) -> list[str]:
        """Pending units that no worker will report on any more, to fail now (by default, none: the
        re-offer watchdog handles a silent unit)."""
        return []

    def external(self, request: dict) -> bool:
        """Its units wait for workers outside the cluster (claimed through the API): the re-offer
        watchdog leaves them alone."""
        return False
