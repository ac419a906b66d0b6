"""The client commands: `scanledger scan run|status|list|follow` and `scanledger apply -f FILE`.

They talk to a running API over HTTP only (httpx), at SCANLEDGER_URL with SCANLEDGER_TOKEN, and
never import the processes' code: what they show is what any HTTP client would see.

Exit codes (also in `scanledger scan --help` and the README):
    0  the scan completed within the thresholds (or the command did its job)
    1  the scan completed with violations or findings above --fail-on-violations / --fail-on-severity
    2  usage or API error: the API unreachable, a refused token, a 4xx/5xx answer, a bad file
    3  the scan failed, partially failed or was aborted/cancelled
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

EXIT_OK, EXIT_THRESHOLD, EXIT_ERROR, EXIT_FAILED = 0, 1, 2, 3
EXIT_CODES = """exit codes:
  0  completed within the thresholds
  1  completed, but violations/findings above --fail-on-violations or of --fail-on-severity or worse
  2  usage or API error (API unreachable: SCANLEDGER_URL; token refused: SCANLEDGER_TOKEN; a 4xx/5xx)
  3  the scan failed, partially failed, or was aborted/cancelled"""
ENVIRONMENT = """environment:
  SCANLEDGER_URL    the API (default http://127.0.0.1:$SCANLEDGER_PORT, port 8000)
  SCANLEDGER_TOKEN  a bearer token (default: the admin token `scanledger up` keeps in its data dir)"""
SEVERITIES = ("low", "medium", "high", "critical")
POLL_S = 0.5


class ClientError(Exception):
    """What went wrong, in one line, for the user: the CLI prints it and exits 2."""


# --- HTTP ---------------------------------------------------------------------------------------


def api_url() -> str:
    return os.environ.get("SCANLEDGER_URL") or f"http://127.0.0.1:{os.environ.get('SCANLEDGER_PORT') or 8000}"


def api_token() -> str | None:
    token = os.environ.get("SCANLEDGER_TOKEN")
    if token:
        return token
    kept = Path(os.environ.get("SCANLEDGER_DATA_DIR") or ".scanledger") / "admin-token"
    try:
        return kept.read_text().strip() or None
    except OSError:
        return None


def _error_message(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text.strip()[:300] or r.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("error"), dict):  # an enveloped error
        body = body["error"]
    if not isinstance(body, dict):
        return str(body)[:300]
    message = str(body.get("message") or body.get("error") or r.reason_phrase)
    details = body.get("details") or []
    if isinstance(details, list) and details:
        shown = "; ".join(f"{'.'.join(map(str, d.get('path', [])))}: {d.get('message')}"
                          if isinstance(d, dict) else str(d) for d in details[:3])
        message += f" ({shown}{'; …' if len(details) > 3 else ''})"
    return message


class Api:
    """An httpx client whose failures are ClientErrors that say what to fix."""

    def __init__(self):
        self.url = api_url().rstrip("/")
        token = api_token()
        self._http = httpx.Client(base_url=self.url, timeout=60,
                                  headers={"Authorization": f"Bearer {token}"} if token else {})

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_) -> None:
        self._http.close()

    def call(self, method: str, path: str, ok: tuple[int, ...] = (200, 201, 202), patience_s: float = 0,
             **kwargs) -> httpx.Response:
        """`patience_s`: how long a read goes on trying through an API that restarts or answers 503."""
        deadline = time.monotonic() + patience_s
        while True:
            try:
                r = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if time.monotonic() < deadline:
                    time.sleep(1)
                    continue
                raise ClientError(f"cannot reach the API at {self.url} ({type(exc).__name__}: {exc}); "
                                  "is it running? set SCANLEDGER_URL to its address") from None
            if r.status_code in (502, 503, 504) and time.monotonic() < deadline:
                time.sleep(1)
                continue
            break
        if r.status_code in ok:
            return r
        if r.status_code == 401:
            raise ClientError(f"the API at {self.url} refused the token (401: {_error_message(r)}); "
                              "set SCANLEDGER_TOKEN to a valid token")
        raise ClientError(f"{method} {path}: {r.status_code} {_error_message(r)}")

    def json(self, method: str, path: str, **kwargs):
        return self.call(method, path, **kwargs).json()


# --- scans of every kind, seen alike ------------------------------------------------------------


@dataclass
class Seen:
    """One reading of a scan: where it is, what it found so far, and whether that is its end."""

    kind: str  # compliance | monitor | sensitive
    scan_id: str
    status: str
    done: int
    total: int
    unit: str  # rules, monitors, files
    found: int  # violations or findings
    message: str | None
    raw: dict

    @property
    def final(self) -> bool:
        return self.status in ("completed", "failed", "aborted", "partial", "cancelled")

    @property
    def succeeded(self) -> bool:
        return self.status == "completed"

    @property
    def found_what(self) -> str:
        return "findings" if self.kind == "sensitive" else "violations"

    @property
    def found_so_far(self) -> str:
        """A compliance or monitor scan counts its violations once it is final (seed 001 shows 0 until then)."""
        if self.final or self.kind == "sensitive":
            return f"{self.found} {self.found_what}"
        return f"{self.found_what} counted at the end"

    def line(self) -> str:
        progress = f"{self.done}/{self.total} {self.unit}" if self.total else "not started"
        return f"{self.kind} scan {self.scan_id}: {self.status}, {progress}, {self.found_so_far}"


def _compliance_seen(body: dict, kind: str) -> Seen:
    return Seen(kind, body["id"], body["status"], body.get("rules_processed") or 0, body.get("rules_total") or 0,
                "rules" if kind == "compliance" else "monitors", body.get("violation_count") or 0,
                body.get("error"), body)


def _sensitive_seen(body: dict) -> Seen:
    p = body.get("progress") or {}
    return Seen("sensitive", body["scan_id"], body["status"], p.get("files_processed") or 0,
                p.get("files_total") or 0, "files", p.get("findings_count") or 0,
                body.get("message") or body.get("error"), body)


def read_scan(api: Api, scan_id: str, kind: str | None = None, patience_s: float = 0) -> Seen:
    """A scan by its id, whichever its kind: /api/scan/{id} (compliance and monitor scans), else
    /api/v1/scans/{id} (sensitive-data scans, `scan-…`)."""
    if kind != "sensitive" and not (kind is None and scan_id.startswith("scan-")):
        r = api.call("GET", f"/api/scan/{scan_id}", ok=(200, 404), patience_s=patience_s)
        if r.status_code == 200:
            body = r.json()
            return _compliance_seen(body, kind or ("monitor" if body.get("policy_id") is None else "compliance"))
        if kind is not None:
            raise ClientError(f"no scan {scan_id}: {_error_message(r)}")
    return _sensitive_seen(api.json("GET", f"/api/v1/scans/{scan_id}", patience_s=patience_s)["data"])


@dataclass
class Thresholds:
    max_found: int | None  # fail when more than this many violations/findings
    severity: str | None  # fail on any violation of this severity or worse

    def exceeded(self, api: Api, seen: Seen) -> list[str]:
        why = []
        if self.max_found is not None and seen.found > self.max_found:
            why.append(f"{seen.found} {seen.found_what} > --fail-on-violations {self.max_found}")
        if self.severity is not None and seen.kind != "sensitive":
            worse = SEVERITIES[SEVERITIES.index(self.severity):]
            counts = {s: api.json("GET", f"/api/scan/{seen.scan_id}/violations",
                                  params={"severity": s, "size": 1})["total"] for s in worse}
            if sum(counts.values()):
                shown = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
                why.append(f"violations of severity {self.severity} or worse: {shown}")
        return why


def _plain_progress(seen_iter, out):
    """One line per change of status or progress: what a CI log or a file gets (no escape codes)."""
    last = None
    for seen in seen_iter:
        line = seen.line()
        if line != last:
            print(line, file=out, flush=True)
            last = line
        yield seen


def _bar_progress(seen_iter):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[unit]}"), TextColumn("{task.fields[found]}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = None
        for seen in seen_iter:
            fields = {"unit": seen.unit, "found": seen.found_so_far}
            description = f"{seen.kind} scan {seen.scan_id} {seen.status}"
            if task is None:
                task = bar.add_task(description, total=seen.total or None, completed=seen.done, **fields)
            else:
                bar.update(task, description=description, total=seen.total or None, completed=seen.done, **fields)
            yield seen


FOLLOW_PATIENCE_S = 60  # a follower rides out an API restart or a broker outage's 503s this long


def _readings(api: Api, scan_id: str, kind: str | None):
    first = True
    while True:
        seen = read_scan(api, scan_id, kind, patience_s=0 if first else FOLLOW_PATIENCE_S)
        first = False
        yield seen
        if seen.final:
            return
        time.sleep(POLL_S)


def follow(api: Api, scan_id: str, kind: str | None, thresholds: Thresholds) -> int:
    """Follow a scan until it is final, with a bar on a terminal (plain lines otherwise, on stderr),
    then its summary on stdout; the exit code says how it ended."""
    readings = _readings(api, scan_id, kind)
    shown = _bar_progress(readings) if sys.stderr.isatty() else _plain_progress(readings, sys.stderr)
    seen = None
    try:
        for reading in shown:
            seen = reading
    except KeyboardInterrupt:
        print(f"stopped following scan {scan_id}; it goes on (scanledger scan follow {scan_id})", file=sys.stderr)
        return 130
    assert seen is not None
    print(summary(seen))
    if not seen.succeeded:
        print(f"scanledger: scan {seen.scan_id} {seen.status}" + (f": {seen.message}" if seen.message else ""),
              file=sys.stderr)
        return EXIT_FAILED
    why = thresholds.exceeded(api, seen)
    if why:
        print(f"scanledger: scan {seen.scan_id} over the threshold: {'; '.join(why)}", file=sys.stderr)
        return EXIT_THRESHOLD
    return EXIT_OK


def summary(seen: Seen) -> str:
    extra = ""
    if seen.kind == "compliance" and seen.succeeded:
        extra = f", compliance score {seen.raw.get('compliance_score')}, {seen.raw.get('record_count')} records"
    elif seen.kind == "sensitive":
        cov = seen.raw.get("coverage") or {}
        extra = "".join(f", {k.replace('_', ' ')} {cov[k]}" for k in ("total_scanned",) if k in cov)
    return (f"{seen.kind} scan {seen.scan_id} {seen.status}: {seen.found} {seen.found_what}, "
            f"{seen.done}/{seen.total} {seen.unit}{extra}")


# --- commands -----------------------------------------------------------------------------------


def _thresholds(args) -> Thresholds:
    if args.fail_on_violations is not None and args.fail_on_violations < 0:
        raise ClientError("--fail-on-violations: give 0 or more")
    return Thresholds(args.fail_on_violations, args.fail_on_severity)


def cmd_scan_run(args) -> int:
    thresholds = _thresholds(args)
    compliance = [args.policy, args.upload, args.mapping]
    kinds = [any(compliance), args.monitors, bool(args.connector)]
    if sum(map(bool, kinds)) != 1:
        raise ClientError("say which scan: --policy, --upload and --mapping (compliance), --monitors "
                          "(every enabled monitor of the workspace) or --connector ID (sensitive data)")
    if args.connector and args.fail_on_severity:
        raise ClientError("--fail-on-severity: a sensitive-data scan's findings have no severity; "
                          "use --fail-on-violations N")
    with Api() as api:
        if any(compliance):
            if not all(compliance):
                raise ClientError("a compliance scan needs --policy, --upload and --mapping")
            body = {"policy_id": args.policy, "upload_id": args.upload, "mapping_id": args.mapping}
            if args.audit_name:
                body["audit_name"] = args.audit_name
            # answers at once: the progress is ours to show
            scan_id, kind = api.json("POST", "/api/scan/run", json=body,
                                     headers={"Prefer": "respond-async"})["scan_id"], "compliance"
        elif args.monitors:
            scan_id, kind = api.json("POST", "/api/scan/run")["data"]["executionId"], "monitor"
        else:
            body = {"connectors": args.connector, "type": "incremental" if args.incremental else "full"}
            scan_id, kind = api.json("POST", "/api/v1/scans/parallel", json=body)["data"]["scan_id"], "sensitive"
        print(f"started {kind} scan {scan_id}", file=sys.stderr if args.wait else sys.stdout, flush=True)
        if not args.wait:
            return EXIT_OK
        return follow(api, scan_id, kind, thresholds)


def cmd_scan_follow(args) -> int:
    with Api() as api:
        return follow(api, args.scan_id, None, _thresholds(args))


def cmd_scan_status(args) -> int:
    import orjson

    with Api() as api:
        seen = read_scan(api, args.scan_id)
    if args.json:
        print(orjson.dumps(seen.raw, option=orjson.OPT_INDENT_2).decode())
    else:
        print(seen.line() + (f" ({seen.message})" if seen.message else ""))
    return EXIT_OK


def cmd_scan_list(args) -> int:
    import orjson

    params = {"operation_type": "scan", "sort_created": "desc", "size": args.limit}
    if args.result:
        params["result"] = args.result
    with Api() as api:
        items = api.json("GET", "/api/operations", params=params)["items"]
    if args.json:
        for item in items:
            print(orjson.dumps(item).decode())
        return EXIT_OK
    print(f"{'run':>6}  {'result':<8}  {'created':<24}  {'records':>9}  {'found':>7}  message")
    for item in items:
        st = item.get("status") or {}
        print(f"{item['id']:>6}  {item['result']:<8}  {item['created'] or '':<24}  {st.get('records_processed', 0):>9}"
              f"  {st.get('anomalies_identified', 0):>7}  {item.get('message') or ''}")
    return EXIT_OK


# --- apply: policies and monitors as code -------------------------------------------------------


FIELDS = {"policy": {"kind", "name", "description", "rules"},
          "monitor": {"kind", "asset", "name", "type", "severity", "enabled", "params"}}


def _load(paths: list[str]) -> list[dict]:
    import yaml

    docs: list[dict] = []
    for path in paths:
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text()
            loaded = [d for d in yaml.safe_load_all(text) if d is not None]
        except OSError as exc:
            raise ClientError(f"{path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ClientError(f"{path}: not YAML: {' '.join(str(exc).split())}") from None
        for doc in loaded:
            for item in doc if isinstance(doc, list) else [doc]:
                if not isinstance(item, dict) or not item.get("name"):
                    raise ClientError(f"{path}: each document is a policy or a monitor with a name")
                kind = item.get("kind", "policy")
                if kind not in ("policy", "monitor"):
                    raise ClientError(f"{path}: kind {kind!r}: policy or monitor")
                if kind == "monitor" and "asset" not in item:
                    raise ClientError(f"{path}: monitor {item['name']!r} needs an asset (its id or name)")
                unknown = sorted(set(item) - FIELDS[kind])
                if unknown:
                    raise ClientError(f"{path}: {kind} {item['name']!r}: unknown field(s) {', '.join(unknown)}"
                                      f" (a {kind} has {', '.join(sorted(FIELDS[kind]))})")
                docs.append({**item, "kind": kind})
    return docs


def _covers(have, want) -> bool:
    """Whether the API's `have` already says all that `want` says (the API adds defaults and rule ids)."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(k in have and _covers(have[k], v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(have) == len(want) and all(map(_covers, have, want))
    return have == want


def _apply_policy(api: Api, doc: dict, existing: dict[str, dict]) -> tuple[str, bool]:
    body = {"name": doc["name"], "rules": doc.get("rules") or []}
    if "description" in doc:
        body["description"] = doc["description"]
    now = existing.get(doc["name"])
    if now is None:
        made = api.json("POST", "/api/policies", json=body)
        return f"policy {doc['name']!r}: created ({made['id']}, {len(made['rules'])} rules)", True
    if _covers(now, body):
        return f"policy {doc['name']!r}: unchanged ({now['id']})", False
    api.json("PUT", f"/api/policies/{now['id']}", json=body)
    return f"policy {doc['name']!r}: updated ({now['id']}, {len(body['rules'])} rules)", True


def _asset_id(api: Api, asset, assets: list[dict] | None) -> tuple[int, list[dict]]:
    if isinstance(asset, int):
        return asset, assets or []
    if assets is None:
        assets = api.json("GET", "/api/assets")["items"]
    named = [a for a in assets if a.get("name") == asset]
    if len(named) != 1:
        raise ClientError(f"asset {asset!r}: {'no asset' if not named else 'several assets'} of that name "
                          "(GET /api/assets lists them; give its id)")
    return named[0]["id"], assets


def _apply_monitor(api: Api, doc: dict, assets: list[dict] | None) -> tuple[str, bool, list[dict] | None]:
    asset_id, assets = _asset_id(api, doc["asset"], assets)
    body = {k: doc[k] for k in ("name", "type", "severity", "enabled", "params") if k in doc}
    monitors = api.json("GET", f"/api/assets/{asset_id}/monitors")["items"]
    now = next((m for m in monitors if m["name"] == doc["name"]), None)
    what = f"monitor {doc['name']!r} of asset {doc['asset']!r}"
    if now is None:
        made = api.json("POST", f"/api/assets/{asset_id}/monitors", json=body)
        return f"{what}: created ({made['id']})", True, assets
    if _covers(now, body):
        return f"{what}: unchanged ({now['id']})", False, assets
    api.json("PATCH", f"/api/assets/{asset_id}/monitors/{now['id']}", json=body)
    return f"{what}: updated ({now['id']})", True, assets


def cmd_apply(args) -> int:
    """Create what is not there, update what differs (by name), leave the rest: applying twice changes nothing."""
    docs = _load(args.file)
    names = [(d["kind"], str(d.get("asset")), d["name"]) for d in docs]
    twice = {n for n in names if names.count(n) > 1}
    if twice:
        raise ClientError(f"named twice: {', '.join(sorted(f'{k} {n!r}' for k, _, n in twice))}")
    changed = 0
    with Api() as api:
        policies = {p["name"]: p for p in api.json("GET", "/api/policies")["items"]} if any(
            d["kind"] == "policy" for d in docs) else {}
        assets = None
        for doc in docs:
            if doc["kind"] == "policy":
                line, did = _apply_policy(api, doc, policies)
            else:
                line, did, assets = _apply_monitor(api, doc, assets)
            changed += did
            print(line, flush=True)
    print(f"{changed} changed, {len(docs) - changed} unchanged" if changed else
          f"nothing to change: {len(docs)} up to date")
    return EXIT_OK
