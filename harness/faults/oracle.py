"""Comparing a run with the oracle: a scan's fingerprint (everything an unfaulted run of it must
equal, through the API and the read models, with its own id taken out), the differences between two
fingerprints, the reference run against the answer computed independently in harness/data.py, and
the whole log replayed into another database against the live read models."""
from __future__ import annotations

import subprocess
import time
from collections import Counter
from pathlib import Path

from harness import data, databases
from harness.faults.knobs import ROWS
from harness.faults.probes import connect_ro, projector_lag, watermarks
from harness.faults.workload import _ok, compliance_rows

# --------------------------------------------------------------------------- comparing


def normalize(value, scan_id: str):
    if isinstance(value, str):
        return value.replace(scan_id, "<scan>")
    if isinstance(value, Counter):
        return Counter({tuple(normalize(list(k), scan_id)): n for k, n in value.items()})
    if isinstance(value, dict):
        return {k: normalize(v, scan_id) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalize(v, scan_id) for v in value]
    return value


SCAN_VIEW = ("status", "violation_count", "compliance_score", "rules_processed", "rules_total", "record_count",
             "error", "pii_findings", "mapping_config", "temporal_scale")
RM_SCAN = ("kind", "status", "record_total", "record_count", "rules_total", "rules_processed", "rule_evals_total",
           "rule_evals_done", "units_total", "violation_count", "violations_seen", "compliance_score", "error",
           "finalized")
RM_UNIT = ("idx", "record_count", "rules_total", "rules_done", "status", "violation_count", "error", "container_id",
           "container_name", "container_type", "records_processed")
VIOLATION = ("rule_id", "rule_name", "rule_type", "severity", "account", "record_index", "record_key", "value",
             "window", "signature", "container_id", "observed")


def fingerprint(target, scan_id: str) -> dict:
    """Everything about a scan that an unfaulted run of the same scan must equal, through the API and
    the read models, with the scan's own id taken out (timestamps and durations are left out)."""
    out: dict = {}
    with target.client() as api:
        view = _ok(api.get(f"/api/scan/{scan_id}"))
        out["view"] = {k: view.get(k) for k in SCAN_VIEW}
        out["score_history"] = [h["score"] for h in view.get("score_history") or []]
        conn = connect_ro(target.db_url)
        try:
            row = conn.execute("SELECT * FROM rm_scans WHERE scan_id = ?", (scan_id,)).fetchone()
            out["rm_scan"] = {k: row[k] for k in RM_SCAN} if row else None
            op = row["operation_id"] if row else None
            out["units"] = [tuple(u[k] for k in RM_UNIT) for u in conn.execute(
                f"SELECT {', '.join(RM_UNIT)} FROM rm_units WHERE scan_id = ? ORDER BY idx", (scan_id,))]
            out["monitors"] = sorted(tuple(m) for m in conn.execute(
                "SELECT u.idx, m.monitor_id, m.position, m.monitor_name, m.stage, m.error, m.anomalies"
                " FROM rm_unit_monitors m JOIN rm_units u ON u.unit_id = m.unit_id WHERE u.scan_id = ?", (scan_id,)))
            violations = Counter(tuple(v) for v in conn.execute(
                f"SELECT {', '.join(f'v.{c}' for c in VIOLATION)} FROM rm_violations v WHERE scan_id = ?",
                (scan_id,)))
        finally:
            conn.close()
        out["violations"] = violations
        out["per_rule"] = dict(sorted(Counter(v[0] for v in violations.elements()).items()))
        out["per_rule_api"] = {}
        for rule in sorted(set(out["per_rule"]) | {r["id"] for r in data.RULES if row and row["kind"] == "compliance"}):
            page = _ok(api.get(f"/api/scan/{scan_id}/violations", params={"rule_id": rule, "size": 1}))
            out["per_rule_api"][rule] = page["total"]
        if op is not None:
            item = _ok(api.get(f"/api/operations/{op}"))
            out["operation"] = {"result": item["result"], "message": item["message"], "status": item["status"]}
            out["containers"] = [{k: v for k, v in ct.items() if k not in ("start_time", "end_time")}
                                 for ct in _ok(api.get(f"/api/operations/{op}/containers"))["items"]]
        if row is not None and row["kind"] == "monitor":
            out["execution"] = _ok(api.get(f"/api/scan/status/{scan_id}"))["data"]["status"]
    return normalize(out, scan_id)


def differences(reference: dict, got: dict) -> list[str]:
    diffs = []
    for key in reference.keys() | got.keys():
        want, have = reference.get(key), got.get(key)
        if want == have:
            continue
        if key == "violations":
            missing, extra = want - have, have - want
            diffs.append(f"violations: {sum(missing.values())} missing (e.g. {list(missing)[:3]}), "
                         f"{sum(extra.values())} extra or duplicated (e.g. {list(extra)[:3]})")
        elif isinstance(want, dict) and isinstance(have, dict):
            sub = {k: (want.get(k), have.get(k)) for k in want.keys() | have.keys() if want.get(k) != have.get(k)}
            diffs.append(f"{key} (reference, trial): {sub}")
        elif isinstance(want, list) and isinstance(have, list) and len(want) == len(have):
            sub = [(w, h) for w, h in zip(want, have, strict=True) if w != h]
            diffs.append(f"{key} differ at {len(sub)} of {len(want)} (reference, trial): {sub[:4]}")
        else:
            diffs.append(f"{key}: reference {str(want)[:400]} / trial {str(have)[:400]}")
    return diffs


def oracle_problems(fp: dict, n: int = ROWS, heavy: int = 0) -> list[str]:
    """The compliance reference against the answer computed from the documented rule semantics."""
    rows, _ = compliance_rows(n)
    want = {rule: len(sigs) for rule, sigs in data.expected(rows).items()}
    want |= {f"all{i}": len(rows) for i in range(heavy)}
    problems = []
    if fp["view"]["status"] != "completed":
        problems.append(f"reference compliance scan is {fp['view']['status']}")
    if fp["per_rule_api"] != want:
        problems.append(f"reference per-rule counts {fp['per_rule_api']} != expected {want}")
    if fp["view"]["record_count"] != len(rows):
        problems.append(f"reference record_count {fp['view']['record_count']} != {len(rows)}")
    return problems


def replay_problems(target, tmp: Path, attempts: int = 5) -> list[str]:
    """Replay the whole log into another database and compare every read-model table with the live one.

    Waits for the live projector to reach the end of the log first, and replays again if the log
    grew meanwhile (a scan of an earlier trial still finishing)."""
    from services.stores.read_models import TABLES

    settings = target.settings
    for _attempt in range(attempts):
        deadline = time.monotonic() + 120
        while (lag := projector_lag(settings, target.db_url)) and time.monotonic() < deadline:
            time.sleep(0.2)
        if lag:
            return [f"the live projector did not reach the end of the log in 120 s: (stored, end) {lag}"]
        before = watermarks(settings, [settings.topics.scan_events, settings.topics.violations])
        into = databases.scratch(tmp, "replay")
        try:
            target.cli("replay", "--into", into, timeout=300)
        except subprocess.CalledProcessError as exc:
            return [f"replay exited with {exc.returncode}: {(exc.stderr or '')[-2000:]}"]
        except subprocess.TimeoutExpired:
            return ["replay did not finish in 300 s"]
        if watermarks(settings, [settings.topics.scan_events, settings.topics.violations]) != before:
            continue
        deadline = time.monotonic() + 60
        while projector_lag(settings, target.db_url) and time.monotonic() < deadline:
            time.sleep(0.2)
        problems = []
        live, replayed = connect_ro(target.db_url), connect_ro(into)
        try:
            for table in TABLES:
                if table == "projector_offsets":
                    continue
                a = sorted(map(tuple, live.execute(f"SELECT * FROM {table}")), key=repr)
                b = sorted(map(tuple, replayed.execute(f"SELECT * FROM {table}")), key=repr)
                if a != b:
                    sa, sb = set(a), set(b)
                    problems.append(f"replay differs from live in {table}: {len(a)} live rows, {len(b)} replayed; "
                                    f"only live e.g. {list(sa - sb)[:2]}; only replayed e.g. {list(sb - sa)[:2]}")
        finally:
            live.close()
            replayed.close()
            databases.remove(into)
        return problems
    return [f"the log kept growing during {attempts} replays"]
