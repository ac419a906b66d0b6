"""compose.yaml (with compose.cluster.yaml over it) and compose.byoc.yaml against the code, without Docker:
every service of our image runs a real `scanledger` command line and sets only variables the code reads, and
the API's health check, the worker's scaling and the named volumes hold together."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from cli.main import build_parser
from services.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
CLUSTER = yaml.safe_load((ROOT / "compose.cluster.yaml").read_text())
BYOC = yaml.safe_load((ROOT / "compose.byoc.yaml").read_text())
PACKAGES = ("cli", "api", "streams", "projections", "byoc", "services")


def _ours(compose: dict) -> dict[str, dict]:
    """The services that run this repository's image (not apache/kafka)."""
    return {name: svc for name, svc in compose["services"].items() if svc.get("build") == "."}


def _dockerfile_cmd() -> list[str]:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["scanledger"\]$', text, re.M)
    return yaml.safe_load(re.search(r"^CMD (.*)$", text, re.M).group(1))


def _read_by_the_code() -> str:
    return "\n".join(p.read_text() for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def _every_one_of_ours() -> dict[str, dict]:
    return {**_ours(COMPOSE), **_ours(BYOC)}


def test_the_system_runs_as_api_worker_and_projector_services():
    assert {"api", "worker", "projector"} <= set(_ours(COMPOSE))


@pytest.mark.parametrize("name", sorted(_every_one_of_ours()))
def test_each_service_runs_a_real_scanledger_command(name):
    command = _every_one_of_ours()[name].get("command") or _dockerfile_cmd()
    args = build_parser().parse_args(command)  # an unknown command or option exits 2 here
    assert args.command == command[0]


@pytest.mark.parametrize("name", sorted(_every_one_of_ours()))
def test_each_variable_a_service_sets_is_one_the_code_reads(name):
    code = _read_by_the_code()
    for variable in _every_one_of_ours()[name].get("environment", {}):
        assert f'"{variable}"' in code, f"{name} sets {variable}, which no code reads"


def test_the_cluster_file_sets_only_variables_the_code_reads_on_our_services():
    code = _read_by_the_code()
    ours = set(_ours(COMPOSE))
    for name, svc in CLUSTER["services"].items():
        if name in ours:
            for variable in svc.get("environment", {}):
                assert f'"{variable}"' in code, f"{name} sets {variable}, which no code reads"


def test_the_api_health_check_asks_healthz_on_the_port_the_api_serves():
    api = COMPOSE["services"]["api"]
    port = int(api["environment"].get("SCANLEDGER_PORT", Settings().port))
    assert any(mapping.endswith(f":{port}") for mapping in api["ports"])
    assert f"127.0.0.1:{port}/healthz" in " ".join(api["healthcheck"]["test"])
    assert "healthcheck" in COMPOSE["services"]["kafka"]


def test_the_worker_can_be_scaled():
    worker = COMPOSE["services"]["worker"]
    assert "ports" not in worker and "container_name" not in worker and "hostname" not in worker


def test_the_data_lives_in_named_volumes_the_file_declares():
    for name, svc in COMPOSE["services"].items():
        for mount in svc.get("volumes", []):
            source = mount.split(":")[0]
            if not source.startswith(("/", ".", "$")):
                assert source in COMPOSE["volumes"], f"{name} mounts {source}, not declared"
    system = [COMPOSE["services"][n] for n in ("api", "worker", "projector")]
    data_dirs = {svc["environment"]["SCANLEDGER_DATA_DIR"] for svc in system}
    assert len(data_dirs) == 1  # one data dir: the SQLite read models and the blobs the three share
    for svc in system:
        assert f"scanledger-data:{next(iter(data_dirs))}" in svc["volumes"]


def test_the_cluster_file_overrides_every_process_of_the_system():
    assert {"api", "worker", "projector"} <= set(CLUSTER["services"])
    assert "scanledger" not in CLUSTER["services"]  # no override of a service compose.yaml no longer has
