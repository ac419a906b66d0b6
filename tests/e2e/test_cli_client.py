"""`scanledger scan …` and `scanledger apply` as a user runs them: a subprocess in another working
directory, with only the documented SCANLEDGER_URL and SCANLEDGER_TOKEN, against the real system.
What is asserted is what a CI pipeline sees: the exit code and the lines it prints."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
import yaml

from harness import data
from harness.system import ROOT, TOKEN, System, free_port
from tests.e2e.helpers import confirm, upload
from tests.e2e.monitor_fixtures import in_workspace, sync

OK, THRESHOLD, ERROR, FAILED = 0, 1, 2, 3


@pytest.fixture()
def cli(system, tmp_path):
    def run(*args: str, token: str = TOKEN, url: str | None = None) -> subprocess.CompletedProcess:
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT),  # the checkout, as `pip install -e` would
               "SCANLEDGER_URL": url or system.url, "SCANLEDGER_TOKEN": token}
        done = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True)
        assert "Traceback" not in done.stderr, done.stderr
        assert "\x1b" not in done.stdout + done.stderr  # not a terminal: no escape codes
        return done

    run.dir = tmp_path
    return run


def _policy_file(cli, name: str, rules: list[dict]) -> str:
    path = cli.dir / f"{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "description": "as code", "rules": rules}))
    return str(path)


def test_apply_creates_then_changes_nothing_then_updates(cli, api):
    name = f"AML as code {uuid.uuid4().hex[:6]}"
    path = _policy_file(cli, name, data.RULES)
    first = cli("apply", "-f", path)
    assert first.returncode == OK, first.stderr
    assert f"policy '{name}': created" in first.stdout and "1 changed, 0 unchanged" in first.stdout
    [made] = [p for p in api.get("/api/policies").json()["items"] if p["name"] == name]
    assert [r["id"] for r in made["rules"]] == [r["id"] for r in data.RULES]

    again = cli("apply", "-f", path)
    assert again.returncode == OK, again.stderr
    assert f"policy '{name}': unchanged ({made['id']})" in again.stdout
    assert "nothing to change: 1 up to date" in again.stdout
    assert api.get(f"/api/policies/{made['id']}").json()["updated_at"] == made["updated_at"]

    rules = [{**r, "params": {**r["params"], "value": 20000}} if r["id"] == "big" else r for r in data.RULES]
    path = _policy_file(cli, name, rules)
    changed = cli("apply", "-f", path)
    assert changed.returncode == OK, changed.stderr
    assert f"policy '{name}': updated ({made['id']}" in changed.stdout
    now = api.get(f"/api/policies/{made['id']}").json()
    assert next(r for r in now["rules"] if r["id"] == "big")["params"]["value"] == 20000
    assert cli("apply", "-f", path).stdout.endswith("nothing to change: 1 up to date\n")

    bad = cli.dir / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "broken", "rules": [{"id": "x", "type": "threshold"}]}))
    refused = cli("apply", "-f", str(bad))
    assert refused.returncode == ERROR
    assert refused.stderr.startswith("scanledger: POST /api/policies: 400 Invalid request body (rules.0")
    assert len(refused.stderr.splitlines()) == 1


def test_compliance_scan_waits_and_exits_by_its_violations(cli, api):
    name = f"AML CI {uuid.uuid4().hex[:6]}"
    assert cli("apply", "-f", _policy_file(cli, name, data.RULES)).returncode == OK
    [policy] = [p for p in api.get("/api/policies").json()["items"] if p["name"] == name]
    rows = data.transactions(1500, seed=11)
    want = data.expected(rows)
    total = sum(len(v) for v in want.values())
    up = upload(api, data.to_csv(rows))
    mapping = confirm(api, up["upload_id"])
    ids = ["--policy", policy["id"], "--upload", up["upload_id"], "--mapping", mapping["mapping_id"]]

    done = cli("scan", "run", *ids, "--wait", "--fail-on-violations", str(total))
    assert done.returncode == OK, done.stderr
    scan_id = done.stderr.splitlines()[0].removeprefix("started compliance scan ")
    assert done.stdout.startswith(f"compliance scan {scan_id} completed: {total} violations, 7/7 rules"), done.stdout
    assert f"compliance scan {scan_id}: completed, 7/7 rules, {total} violations" in done.stderr  # plain progress
    assert api.get(f"/api/scan/{scan_id}").json()["violation_count"] == total

    over = cli("scan", "run", *ids, "--wait", "--fail-on-violations", str(total - 1))
    assert over.returncode == THRESHOLD, over.stderr
    assert f"{total} violations > --fail-on-violations {total - 1}" in over.stderr.splitlines()[-1]

    critical = data.by_severity(want)["critical"]
    assert critical
    severe = cli("scan", "follow", scan_id, "--fail-on-severity", "critical")
    assert severe.returncode == THRESHOLD, severe.stderr
    assert f"violations of severity critical or worse: {critical} critical" in severe.stderr

    status = cli("scan", "status", scan_id)
    assert status.returncode == OK
    assert status.stdout == f"compliance scan {scan_id}: completed, 7/7 rules, {total} violations\n"
    listed = cli("scan", "list", "--limit", "50")
    assert listed.returncode == OK and listed.stdout.startswith("   run  result")
    assert any(" success " in line and f" {total} " in line for line in listed.stdout.splitlines()[1:])

    started = cli("scan", "run", *ids)  # without --wait: the id, at once
    assert started.returncode == OK and started.stdout.startswith("started compliance scan ")
    followed = cli("scan", "follow", started.stdout.split()[-1])
    assert followed.returncode == OK and " completed: " in followed.stdout


def test_monitors_as_code_and_a_failed_monitor_scan(system, cli):
    lake = system.datastore_root / f"cli-lake-{uuid.uuid4().hex[:6]}"
    lake.mkdir()
    (lake / "orders.csv").write_text("order_id,email\n1,a@x.io\n2,\n")
    with in_workspace(system, "CLI monitors") as ws:
        token = ws.admin.headers["Authorization"].removeprefix("Bearer ")
        r = ws.admin.post("/api/datastores", json={"name": "Lake", "type": "local_dir", "path": lake.name})
        assert r.status_code == 201, r.text
        [asset] = sync(ws.admin, r.json()["id"])
        monitors = cli.dir / "monitors.yaml"
        monitors.write_text(yaml.safe_dump({"kind": "monitor", "asset": "orders.csv", "name": "No such column",
                                            "type": "null_rate", "params": {"column": "missing", "max": 0.0}}))
        made = cli("apply", "-f", str(monitors), token=token)
        assert made.returncode == OK, made.stderr
        assert "monitor 'No such column' of asset 'orders.csv': created" in made.stdout
        again = cli("apply", "-f", str(monitors), token=token)
        assert "unchanged" in again.stdout and "nothing to change" in again.stdout
        assert [m["name"] for m in ws.admin.get(f"/api/assets/{asset['id']}/monitors").json()["items"]] == [
            "No such column"]

        failed = cli("scan", "run", "--monitors", "--wait", token=token)
        assert failed.returncode == FAILED, (failed.stdout, failed.stderr)
        assert failed.stdout.startswith("monitor scan ") and " failed: " in failed.stdout
        assert failed.stderr.splitlines()[-1].startswith("scanledger: scan ")


def test_sensitive_scan_fails_the_job_on_findings(system, cli, api):
    lake = system.datastore_root / f"cli-pii-{uuid.uuid4().hex[:6]}"
    lake.mkdir()
    (lake / "people.csv").write_text("name,email\nJane,jane.doe@example.com\nJohn,john@example.org\n")
    r = api.post("/api/v1/connectors", json={"name": lake.name, "type": "local_dir", "config": {"path": lake.name}})
    assert r.status_code == 201, r.text
    connector = r.json()["data"]["id"]
    found = cli("scan", "run", "--connector", connector, "--wait", "--fail-on-violations", "0")
    assert found.returncode == THRESHOLD, (found.stdout, found.stderr)
    assert found.stdout.startswith("sensitive scan scan-") and " completed: " in found.stdout
    assert "findings > --fail-on-violations 0" in found.stderr


def test_errors_are_one_line_naming_what_to_fix(cli):
    refused = cli("scan", "list", token="not-a-token")
    assert refused.returncode == ERROR
    assert refused.stderr.count("\n") == 1 and "SCANLEDGER_TOKEN" in refused.stderr and "401" in refused.stderr

    away = f"http://127.0.0.1:{free_port()}"
    unreachable = cli("scan", "status", "x", url=away)
    assert unreachable.returncode == ERROR
    assert unreachable.stderr.count("\n") == 1
    assert f"cannot reach the API at {away}" in unreachable.stderr and "SCANLEDGER_URL" in unreachable.stderr

    missing = cli("scan", "status", "no-such-scan")
    assert missing.returncode == ERROR and missing.stderr.count("\n") == 1 and " 404 " in missing.stderr

    usage = cli("scan", "run", "--wait")
    assert usage.returncode == ERROR and "--policy" in usage.stderr
    no_severity = cli("scan", "run", "--connector", "conn-x", "--fail-on-severity", "high")
    assert no_severity.returncode == ERROR and "use --fail-on-violations" in no_severity.stderr
    absent = cli("apply", "-f", "no-such.yaml")
    assert absent.returncode == ERROR and absent.stderr == "scanledger: no-such.yaml: No such file or directory\n"


def test_a_follower_rides_out_an_api_restart(kafka, tmp_path):
    """The API goes away while `--wait` follows a scan, and comes back: the job still ends by the scan's
    result, not with an error (the worker is paused meanwhile, so the scan cannot end before the outage)."""
    system = System(kafka, tmp_path / "system").start()
    try:
        api = system.client()
        rows = data.transactions(500, seed=5)
        up = upload(api, data.to_csv(rows))
        mapping = confirm(api, up["upload_id"])
        policy = api.post("/api/policies", json={"name": "restart", "rules": data.RULES}).json()
        worker = system.processes["worker"]
        worker.send_signal(signal.SIGSTOP)
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "SCANLEDGER_URL": system.url,
               "SCANLEDGER_TOKEN": TOKEN}
        follower = subprocess.Popen([sys.executable, "-m", "cli.main", "scan", "run", "--policy", policy["id"],
                                     "--upload", up["upload_id"], "--mapping", mapping["mapping_id"], "--wait"],
                                    cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert follower.stderr.readline().startswith("started compliance scan ")
        assert ": pending, " in follower.stderr.readline()
        system.processes["api"].terminate()
        system.processes["api"].wait()
        time.sleep(3)
        assert follower.poll() is None  # still following through the outage
        log = open(system.data_dir / "api.log", "ab")  # noqa: SIM115 (the child's stdout for its life)
        system.processes["api"] = subprocess.Popen([sys.executable, "-m", "cli.main", "api"], env=system.env,
                                                   cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        worker.send_signal(signal.SIGCONT)
        out, err = follower.communicate()
        assert follower.returncode == OK, (out, err)
        total = sum(len(v) for v in data.expected(rows).values())
        assert " completed: " in out and f"{total} violations" in out, out
        assert "Traceback" not in err
    finally:
        system.processes["worker"].send_signal(signal.SIGCONT)
        system.stop()
