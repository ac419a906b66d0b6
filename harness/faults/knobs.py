"""The knobs of the fault trials: the size of the workload (records, units, extra rules) and the
deadline, read once from the environment (SCANLEDGER_FAULT_*), with the seed, the final scan states
and the few values every other module derives from them (a policy's rules, the unit size of a scan,
a digest of the product's code to tie a reference run to the code it ran on)."""
from __future__ import annotations

import os

from harness import data
from harness.system import ROOT

# --------------------------------------------------------------------------- knobs

ROWS = int(os.environ.get("SCANLEDGER_FAULT_ROWS", "60000"))
# Two rule groups (by account; by Txn ID for the duplicate rule), each split into
# ROWS / UNIT_RECORDS units: 10 units by default.
UNIT_RECORDS = int(os.environ.get("SCANLEDGER_FAULT_UNIT_RECORDS", str(max(1, ROWS // 5))))
# How long a trial's scans may take to reach a final state after the POST (a deadline, not
# an expectation: a healthy trial settles in seconds; a stuck scan fails the trial after it).
# The product's own bounds are far shorter: a stalled worker exits after 30 s, a silent unit is
# re-offered after 60 s.
DEADLINE_S = float(os.environ.get("SCANLEDGER_FAULT_DEADLINE_S", "180"))
# At most this many trials of each fault kind (default: each test's own count). CI's second pass, on
# PostgreSQL, runs each kind once: the first pass, on SQLite, runs them all.
TRIALS_CAP = int(os.environ.get("SCANLEDGER_FAULT_TRIALS", "0")) or None
SEED = 4242
FINAL = ("completed", "failed", "aborted")
MONITOR_ROWS = 40000
MONITOR_ASSETS = 4
# Extra rules that flag every record (one violation per record each): a heavier violation
# stream, closer to the 300k-record scan with 200k violations (bench: more load).
HEAVY_RULES = int(os.environ.get("SCANLEDGER_FAULT_HEAVY_RULES", "0"))


def policy_rules(heavy: int) -> list[dict]:
    return [*data.RULES, *({"id": f"all{i}", "name": f"Every record {i}", "type": "threshold", "severity": "low",
                            "params": {"field": "amount", "op": "gt", "value": -1}} for i in range(heavy))]


def trials(count: int) -> range:
    """The trial numbers of a fault test of `count` trials (SCANLEDGER_FAULT_TRIALS caps them)."""
    return range(1, min(count, TRIALS_CAP or count) + 1)


def code_version() -> str:
    """A digest of the product's source: a campaign's reference holds only for the code it ran on
    (other engineers may be changing the work tree while a long benchmark runs)."""
    import hashlib

    digest = hashlib.sha1()
    for package in ("services", "streams", "projections", "api"):
        for path in sorted((ROOT / package).rglob("*.py")):
            digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def unit_records(rows: int) -> int:
    """SCANLEDGER_UNIT_RECORDS for a compliance scan of `rows` records: 10 units either way."""
    return UNIT_RECORDS if rows == ROWS else max(1, rows // 5)
