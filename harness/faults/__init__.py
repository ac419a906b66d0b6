"""Fault trials on the real system, shared by tests/faults and bench/faults.py.

A *campaign* is one fault kind on one system: it starts the system (worker, projector and
API processes on a Kafka broker, or `scanledger up`), prepares a workload (an upload,
mapping and policy for a compliance scan; a datastore with monitors for a monitor scan),
runs it once with no fault (the reference, checked against the answer computed
independently in harness/data.py), then runs *trials*: the same workload again with one
fault injected mid-scan (after some units of the compliance scan reported, not all).

Each trial ends with every scan it started (or that appeared) compared with the reference:
the scan in its final state, the same counts (violations in total, per rule and per unit,
records, unit results and container statuses, monitor outcomes and anomalies), and replay
of the whole log into another database equal, table by table, to the live read models.
A trial is *settled* when every scan reached a final state before the deadline,
*stalled* when one did not, *exact* when it settled and nothing differed. The time to
settle runs from the POST of the scans to the last one final.

Nothing here waits without a deadline: a stuck scan ends the trial as stalled, with the
scan's unit states, the consumer lag and the worker's log tail in the report. Between faults
the harness stands in for `up`'s supervisor: a process that exits by itself is started again
(after a backoff) and the trial notes it; where nothing may stop (poison records) it is a
failure.

    pytest tests/faults                        # every kind, as CI runs it (part of `pytest`)
    pytest tests/faults -q -k worker_kill      # one kind
    python -m bench.faults --trials 10 --kinds all,worker_kill:50
    python -m bench.chaos --minutes 3          # rounds of random faults on the scaled system

Knobs (environment): SCANLEDGER_FAULT_ROWS (records of the compliance scan, default 60000),
SCANLEDGER_FAULT_UNIT_RECORDS (default ROWS / 5: 10 units), SCANLEDGER_FAULT_HEAVY_RULES
(extra rules that flag every record, default 0), SCANLEDGER_FAULT_DEADLINE_S (default 180),
SCANLEDGER_FAULT_VERBOSE=1 (each trial's summary on stderr as it ends).

The package, one module per part, each importing only parts listed before it: knobs (the
environment), probes (the harness's own Kafka and SQLite reads), systems (Procs, Up), waiting,
workload, oracle (comparing), trials (Trial, Campaign), kinds (the nine fault kinds, KINDS), chaos
(random faults under a mixed workload of all four scan kinds: bench/chaos.py) and glue (for pytest).
This module only re-exports the names its callers use.
"""
from __future__ import annotations

from harness import data
from harness.faults.chaos import Chaos
from harness.faults.glue import campaign, check
from harness.faults.kinds import (
    KINDS,
    ApiTerm,
    BrokerNodeKill,
    BrokerStop,
    Poison,
    ProjectorKill,
    ScaleOut,
    TwoWorkers,
    UpCtrlC,
    WorkerKill,
)
from harness.faults.knobs import DEADLINE_S, MONITOR_ASSETS, ROWS, unit_records
from harness.faults.systems import Procs, Up
from harness.faults.trials import Campaign, Trial
from harness.faults.workload import Workload

__all__ = [
    "DEADLINE_S",
    "KINDS",
    "MONITOR_ASSETS",
    "ROWS",
    "ApiTerm",
    "BrokerNodeKill",
    "BrokerStop",
    "Campaign",
    "Chaos",
    "Poison",
    "Procs",
    "ProjectorKill",
    "ScaleOut",
    "Trial",
    "TwoWorkers",
    "Up",
    "UpCtrlC",
    "WorkerKill",
    "Workload",
    "campaign",
    "check",
    "data",
    "unit_records",
]
