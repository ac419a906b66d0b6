"""The project's own single-node Kafka broker for `scanledger up` and the tests (see broker.py)."""
from cli.localbroker.broker import BrokerError, ensure_jars, start, status, stop

__all__ = ["BrokerError", "ensure_jars", "start", "status", "stop"]
