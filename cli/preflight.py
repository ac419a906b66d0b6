"""What a process checks before it starts anything: its data dir, its port, its database.

Each failure is a `StartError` whose text is one line naming the setting to fix; `scanledger` prints it
and exits 2 (cli/main.py), with no traceback and nothing left running.
"""
from __future__ import annotations

import logging
import os
import socket
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from services.adapters.db import UnsupportedDatabase, connect
from services.adapters.kafka_client import client_config
from services.settings import Settings


class StartError(Exception):
    """A setting that stops a process from starting: the message says which, and what to do."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def check_data_dir(settings: Settings) -> None:
    """The data dir is a directory this process may write in, or may make: checked without making it, so a
    process that stops on a later check leaves nothing behind."""
    why = _unusable(settings.data_dir)
    if why:
        raise StartError(f"the data dir {settings.data_dir} cannot be used ({why}): set SCANLEDGER_DATA_DIR "
                         "(or --data-dir) to a directory this user can write")


def _unusable(data_dir: Path) -> str | None:
    path = data_dir
    while not path.exists() and path != path.parent:
        path = path.parent  # the nearest part that exists: where the data dir would be made
    if not path.is_dir():
        return f"{path} is not a directory"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"{path} is not writable"
    return None


def check_port(host: str, port: int) -> None:
    """The API's port is free on its host (something else listening there would answer its health checks)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is free to listen on
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise StartError(f"the API port {port} on {host} is not available ({exc.strerror or exc}): stop what "
                             "holds it, or choose another SCANLEDGER_PORT (or --port)") from None


def check_kafka_answers(settings: Settings, timeout_s: float = 15) -> None:
    """A Kafka of the user's (KAFKA_BOOTSTRAP_SERVERS) answers before `up` starts anything on it. Its client
    logs to a logger of its own that is silent: librdkafka would otherwise print each refused connection."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    quiet = logging.getLogger("scanledger.preflight.kafka")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    client = AdminClient({**client_config(settings), "logger": quiet})  # with the security settings
    try:
        client.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise StartError(f"no Kafka answers at {settings.bootstrap_servers} within {timeout_s:.0f}s "
                         f"({exc.args[0].str()}): start it, or fix KAFKA_BOOTSTRAP_SERVERS (unset, `up` runs a "
                         "broker of its own)") from None


def check_log_level(level: str) -> None:
    """The worker's log level is one Python's logging knows (Faust's worker would die on another with a stack)."""
    if not isinstance(logging.getLevelName(level.upper()), int):
        raise StartError(f"{level!r} is not a log level: set SCANLEDGER_WORKER_LOGLEVEL (or --loglevel) to debug, "
                         "info, warning or error")


def shown_url(url: str) -> str:
    """A database URL fit for a message: its password left out."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def open_database(url: str, setting: str = "SCANLEDGER_DATABASE_URL"):
    """A connection to the database of `setting`, or a StartError saying why there is none."""
    try:
        return connect(url)
    except UnsupportedDatabase:
        raise StartError(f"unsupported database URL {shown_url(url)}: set {setting} to sqlite:///path or "
                         "postgresql://user:password@host:port/database") from None
    except (psycopg.Error, sqlite3.OperationalError, OSError) as exc:
        raise StartError(f"cannot open the database {shown_url(url)} ({_one_line(exc)}): check that it is up and "
                         f"reachable, or fix {setting}") from None
