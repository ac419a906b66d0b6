"""SCANLEDGER_TEST_BROKER picks the tests' broker (harness/kafka_container.py). Asking for the container where
no Docker engine answers, or for a broker that does not exist, stops `pytest` with one line saying what to do."""
import os
import subprocess
import sys

import pytest

from harness import kafka_container
from harness.system import ROOT


@pytest.mark.parametrize("value", ["", "local", " LOCAL "])
def test_the_projects_own_broker_is_the_default(monkeypatch, value):
    monkeypatch.setenv("SCANLEDGER_TEST_BROKER", value)
    assert kafka_container.selected() is False


def _pytest_with(tmp_path, value: str) -> subprocess.CompletedProcess:
    no_docker = f"unix://{tmp_path / 'no-docker.sock'}"  # no engine here, whatever this machine has
    env = {**os.environ, "SCANLEDGER_TEST_BROKER": value, "DOCKER_HOST": no_docker,
           "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/unit/test_kinds.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True)


def test_the_container_without_docker_is_one_line(tmp_path):
    run = _pytest_with(tmp_path, "testcontainers")
    assert run.returncode == pytest.ExitCode.USAGE_ERROR
    assert run.stderr.strip().splitlines() == [
        f"ERROR: SCANLEDGER_TEST_BROKER=testcontainers needs a Docker engine, and none answers (DOCKER_HOST: "
        f"unix://{tmp_path / 'no-docker.sock'}): start Docker, or unset SCANLEDGER_TEST_BROKER to run the "
        "project's own broker"]
    assert "passed" not in run.stdout  # stopped before any test ran


def test_an_unknown_broker_is_one_line(tmp_path):
    run = _pytest_with(tmp_path, "redpanda")
    assert run.returncode == pytest.ExitCode.USAGE_ERROR
    assert len(run.stderr.strip().splitlines()) == 1
    assert "SCANLEDGER_TEST_BROKER=redpanda" in run.stderr and "testcontainers" in run.stderr
