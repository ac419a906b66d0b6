import sys

import pytest

from harness import kafka_container
from harness.s3 import S3Server
from harness.system import Broker, System


def pytest_configure(config):
    """SCANLEDGER_TEST_BROKER asking for what this machine lacks (Docker) stops the run with one line."""
    try:
        kafka_container.selected()
    except kafka_container.SelectionError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_terminal_summary(terminalreporter):
    """Every fault trial checked in this run, with its notes (harness.faults.glue.CHECKED)."""
    glue = sys.modules.get("harness.faults.glue")
    if glue is not None and glue.CHECKED:
        terminalreporter.section("fault trials")
        for summary in glue.CHECKED:
            terminalreporter.write_line(summary)


@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    broker = Broker(tmp_path_factory.mktemp("kafka"))
    yield broker.start()
    broker.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 server (moto's, in its own process) that checks credentials: `s3_server.keys` are valid."""
    server = S3Server(tmp_path_factory.mktemp("s3"), auth=True).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def system(kafka, tmp_path_factory):
    # Small units so the end-to-end scans really split into several; a small upload cap to test 413.
    datastore_root = tmp_path_factory.mktemp("datastores")
    running = System(kafka, tmp_path_factory.mktemp("system"), SCANLEDGER_UNIT_RECORDS="700",
                     SCANLEDGER_MAX_UPLOAD_RECORDS="20000", SCANLEDGER_DATASTORE_ROOT=str(datastore_root)).start()
    running.datastore_root = datastore_root
    yield running
    running.stop()


@pytest.fixture()
def api(system):
    with system.client() as client:
        yield client
