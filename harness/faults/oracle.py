"""Comparing a run with the oracle: a scan's fingerprint (everything an unfaulted run of it must
equal, through the API and the read models, with its own id taken out; for a sensitive-data scan its
every finding and file outcome, for a catalog sync every asset's profile), the differences between two
fingerprints, the reference run against the answers computed independently (harness/data.py for the
compliance scan, the corpus's truth for the sensitive-data scan, the tables written for the sync), and
the whole log replayed into another database against the live read models."""
from __future__ import annotations

import subprocess
import time
from collections import Counter
from pathlib import Path

import orjson

from harness import data, databases
from harness.faults.knobs import MONITOR_ASSETS, MONITOR_ROWS, ROWS
from harness.faults.probes import connect_ro, projected_topics, projector_lag, watermarks
from harness.faults.workload import _ok, catalog_tables, compliance_rows, monitors_for, sensitive_corpus

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
FINDING = ("finding_id", "connector_id", "file", "row", "col", "line", "start", "end_", "detector", "family",
           "confidence", "masked", "llm_verdict")
SENSITIVE_FILE = ("connector_id", "name", "status", "reason", "size", "version", "findings", "occurrences")


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
        if row is not None and row["kind"] == "sensitive":
            out |= sensitive_fingerprint(target, api, scan_id)
        if row is not None and row["kind"] == "catalog":
            out |= catalog_fingerprint(target, api, scan_id, row["datastore_id"])
    return normalize(out, scan_id)


def sensitive_fingerprint(target, api, scan_id: str) -> dict:
    """A sensitive-data scan as GET /api/v1/scans/{id} shows it (its times aside), each finding (ids are a
    function of connector, file, location, detector and offset: the same in every run) and file outcome."""
    view = _ok(api.get(f"/api/v1/scans/{scan_id}"))["data"]
    progress = {k: v for k, v in view["progress"].items() if k != "elapsed_seconds"}
    out = {"sensitive_view": {**{k: v for k, v in view.items() if k not in ("scan_id", "created_at", "started_at",
                                                                           "completed_at", "progress")},
                              "progress": progress}}
    conn = connect_ro(target.db_url)
    try:
        out["findings"] = Counter(tuple(f) for f in conn.execute(
            f"SELECT {', '.join(FINDING)} FROM rm_sensitive_findings WHERE scan_id = ?", (scan_id,)))
        out["findings_per_detector"] = dict(sorted(Counter(f[8] for f in out["findings"].elements()).items()))
        out["files"] = sorted(tuple(f) for f in conn.execute(
            f"SELECT {', '.join(SENSITIVE_FILE)} FROM rm_sensitive_files WHERE scan_id = ?", (scan_id,)))
        out["chunks"] = [tuple(k) for k in conn.execute(
            "SELECT idx, start_index, end_index, file_count FROM rm_sensitive_chunks WHERE scan_id = ? ORDER BY idx",
            (scan_id,))]
        out["late"] = [conn.execute(f"SELECT COUNT(*) FROM {t} WHERE scan_id = ?", (scan_id,)).fetchone()[0]
                       for t in ("rm_sensitive_late_files", "rm_sensitive_late_findings")]
    finally:
        conn.close()
    return out


def catalog_fingerprint(target, api, scan_id: str, datastore_id: int | None) -> dict:
    """A sync's outcome: the profile (columns, row count) it left on each asset it found, through the API
    (the assets of its datastore) and the read model (the profiles this sync wrote)."""
    assets = _ok(api.get("/api/assets", params={"datastore": datastore_id}))["items"] if datastore_id else []
    conn = connect_ro(target.db_url)
    try:
        written = {r["container_id"]: (r["columns"], r["row_count"]) for r in conn.execute(
            "SELECT container_id, columns, row_count FROM rm_asset_profiles WHERE scan_id = ?", (scan_id,))}
    finally:
        conn.close()
    return {"assets": sorted((a["name"], a["container_type"], repr(a["columns"]), a["row_count"])
                             for a in assets),
            "profiles": sorted((a["name"], *written[a["id"]]) for a in assets if a["id"] in written)}


def differences(reference: dict, got: dict) -> list[str]:
    diffs = []
    for key in reference.keys() | got.keys():
        want, have = reference.get(key), got.get(key)
        if want == have:
            continue
        if isinstance(want, Counter) and isinstance(have, Counter):  # violations, findings
            missing, extra = want - have, have - want
            diffs.append(f"{key}: {sum(missing.values())} missing (e.g. {list(missing)[:3]}), "
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


def sensitive_problems(fp: dict) -> list[str]:
    """The sensitive-data reference against the corpus's truth: every planted value found once, at its
    place and in its family, nothing else; every file scanned."""
    corpus = sensitive_corpus()
    found = Counter((f[2], ("line", f[5]) if f[5] is not None else ("cell", f[3], f[4]), f[9])
                    for f in fp["findings"].elements())
    truth = Counter(corpus.truth)
    problems = []
    if fp["sensitive_view"]["status"] != "completed":
        problems.append(f"reference sensitive scan is {fp['sensitive_view']['status']}")
    if found != truth:
        problems.append(f"reference sensitive findings differ from the corpus's truth: {sum((truth - found).values())}"
                        f" missed (e.g. {list(truth - found)[:3]}), {sum((found - truth).values())} not planted or "
                        f"found twice (e.g. {list(found - truth)[:3]})")
    scanned = [f for f in fp["files"] if f[2] == "scanned"]
    if len(scanned) != len(corpus.files) or len(fp["files"]) != len(corpus.files):
        problems.append(f"reference sensitive scan scanned {len(scanned)} of {len(fp['files'])} files, "
                        f"not all {len(corpus.files)}")
    return problems


def monitor_problems(fp: dict) -> list[str]:
    """The monitor reference against what the lake and its monitors are made to give (workload.py): on each
    of the MONITOR_ASSETS assets every monitor runs but "No such column" (a column the files lack), which
    fails its unit; broken.csv cannot be read; so every unit fails and so does the scan, with every record
    of the readable assets counted."""
    problems = []
    units = {u[8]: (u[4], u[6]) for u in fp["units"]}
    assets = sorted(n for n in units if n != "broken.csv")
    if len(assets) != MONITOR_ASSETS or "broken.csv" not in units:
        problems.append(f"reference monitor scan has units {sorted(units)}")
    for name, (status, error) in units.items():
        cause = "cannot read" if name == "broken.csv" else "No such column"
        if status != "failed" or cause not in (error or ""):
            problems.append(f"reference monitor unit {name} is {status} ({error}), not failed for {cause!r}")
    stages = Counter((name, stage) for _idx, _id, _pos, name, stage, _error, _anomalies in fp["monitors"])
    want = Counter({(m["name"], "failed" if m["name"] == "No such column" else "completed"): MONITOR_ASSETS
                    for m in monitors_for("accounts.csv")})
    want[("Has rows", "failed")] = 1
    if stages != want:
        problems.append(f"reference monitor stages {dict(stages)} != {dict(want)}")
    if fp["rm_scan"]["status"] != "failed" or fp["view"]["record_count"] != MONITOR_ASSETS * MONITOR_ROWS:
        problems.append(f"reference monitor scan is {fp['rm_scan']['status']} with {fp['view']['record_count']} "
                        f"records, not failed with {MONITOR_ASSETS * MONITOR_ROWS}")
    return problems


def catalog_problems(fp: dict) -> list[str]:
    """The sync's reference against the tables written: each readable one profiled with its rows and
    columns, the unreadable one found and not profiled."""
    want = catalog_tables()
    problems = []
    # the unreadable file's unit fails, every other completes: the sync ends partial_failure
    units = {u[8]: u[4] for u in fp["units"]}
    expected_units = {name: "completed" if shape else "failed" for name, shape in want.items()}
    if fp["rm_scan"]["status"] != "partial_failure" or units != expected_units:
        problems.append(f"reference catalog sync is {fp['rm_scan']['status']} with units {units}, not "
                        f"partial_failure with {expected_units}")
    if sorted(a[0] for a in fp["assets"]) != sorted(want):
        problems.append(f"reference sync found assets {[a[0] for a in fp['assets']]}, not {sorted(want)}")
    profiles = {name: (rows, [c["name"] if isinstance(c, dict) else c for c in orjson.loads(columns)])
                for name, columns, rows in fp["profiles"]}
    expected = {name: shape for name, shape in want.items() if shape is not None}
    if profiles != expected:
        problems.append(f"reference sync profiles {profiles} != the tables written {expected}")
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
        before = watermarks(settings, projected_topics(settings))
        into = databases.scratch(tmp, "replay")
        try:
            target.cli("replay", "--into", into, timeout=300)
        except subprocess.CalledProcessError as exc:
            return [f"replay exited with {exc.returncode}: {(exc.stderr or '')[-2000:]}"]
        except subprocess.TimeoutExpired:
            return ["replay did not finish in 300 s"]
        if watermarks(settings, projected_topics(settings)) != before:
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
