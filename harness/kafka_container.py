"""The tests' broker in Docker (SCANLEDGER_TEST_BROKER=testcontainers): testcontainers' KafkaContainer on the
apache/kafka 4 image, the Kafka that `scanledger up` and compose.yaml run.

testcontainers' KafkaContainer starts Confluent's image with Confluent's scripts (/etc/confluent/docker/…),
which apache/kafka lacks. It keeps its way of learning the mapped port (the container waits for a start
script written after it started); the script here gives apache/kafka's own launcher the advertised listener
that port makes, and the rest of the KRaft settings come as KAFKA_* variables, as that image reads them.
"""
from __future__ import annotations

import os

from testcontainers.community.kafka import KafkaContainer

IMAGE = "apache/kafka:4.1.1"  # compose.yaml's, and the version cli/localbroker/pom.xml fetches
SELECTOR = "SCANLEDGER_TEST_BROKER"


class SelectionError(Exception):
    """SCANLEDGER_TEST_BROKER asks for what this machine cannot give: one line saying what to do."""


def selected() -> bool:
    """Whether the tests' broker is to be a container; a value that names no broker, or Docker that does not
    answer when a container is asked for, is a SelectionError."""
    choice = os.environ.get(SELECTOR, "").strip().lower()
    if choice in ("", "local"):
        return False
    if choice != "testcontainers":
        raise SelectionError(f"{SELECTOR}={choice}: give `local` (the project's own broker, the default) or "
                             "`testcontainers` (apache/kafka in Docker)")
    if not _docker_answers():
        raise SelectionError(f"{SELECTOR}=testcontainers needs a Docker engine, and none answers (DOCKER_HOST: "
                             f"{os.environ.get('DOCKER_HOST') or 'the default socket'}): start Docker, or unset "
                             f"{SELECTOR} to run the project's own broker")
    return True


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # no engine, no socket, no permission: all mean no container
        return False


class ApacheKafkaContainer(KafkaContainer):
    def configure(self) -> None:
        self.kraft_enabled = True  # with_kraft() would check the tag against Confluent's versions
        super().configure()  # the KRaft listeners, controller quorum and node id, as KAFKA_* variables
        for name in ("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
                     "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR",
                     "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR"):
            self.with_env(name, "1")
        self.with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")  # as the system's brokers: it makes its own

    def tc_start(self) -> None:
        host, port = self.get_container_host_ip(), self.get_exposed_port(self.port)
        script = (f"export KAFKA_ADVERTISED_LISTENERS={self.listener_name}://{host}:{port},"
                  "BROKER://$(hostname -i | cut -d' ' -f1):9092\n"
                  "exec /etc/kafka/docker/run\n")
        self.create_file(script.encode(), self.TC_START_SCRIPT)


def start(image: str = IMAGE) -> ApacheKafkaContainer:
    """A started single-node KRaft broker; its .get_bootstrap_server() is reachable from this host."""
    return ApacheKafkaContainer(image).start(timeout=120)
