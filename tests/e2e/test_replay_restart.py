"""The ledger is the record of truth: replay rebuilds the same rows; a restart loses nothing.

Named to run after the monitor and operations modules, so the replay covers their runs too
(syncs, monitor scans, aborts, resumes, reruns, deletes), and the config every module before it
made (services.stores.config_log): workspaces, tokens, policies, uploads, mappings, datastores,
assets, monitors, connectors, detectors, the allow-list and BYOC worker tokens."""

from harness import data, databases
from harness.system import System
from services.stores.config_log import LOGGED
from services.stores.read_models import TABLES
from tests.e2e.helpers import policy, rows, scan_once, wait_settled


def test_replay_arrives_at_exactly_the_live_rows(api, system, tmp_path):
    pol = policy(api, name="replayed")
    for seed in (11, 12):
        scan_once(api, data.transactions(600, seed=seed), pol["id"])
    target = databases.scratch(tmp_path, "replay")
    out = system.cli("replay", "--into", target)
    assert "replayed" in out.stdout
    for table in TABLES:
        if table == "projector_offsets":
            continue
        assert rows(target, table) == rows(system.db_url, table), table
    for table in LOGGED:  # the config, from its changes on the log alone
        live = rows(system.db_url, table)
        # (BYOC worker tokens are made on a system of test_byoc_workers' own, and replayed there)
        assert live or table == "worker_tokens", f"no {table} made before this module: the check would be empty"
        assert rows(target, table) == live, table


def test_restart_keeps_every_scan(kafka, tmp_path):
    system = System(kafka, tmp_path / "restart").start()
    try:
        with system.client() as api:
            pol = policy(api, rules=data.RULES[:3])
            scan_id, scan = scan_once(api, data.transactions(300, seed=21), pol["id"])
        system.stop()
        system.start()
        with system.client() as api:
            assert wait_settled(api, scan_id) == scan
    finally:
        system.stop()

