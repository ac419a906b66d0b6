"""The project's own Kafka broker, one node or a local cluster, for `scanledger up` and the tests (see broker.py)."""
from cli.localbroker.broker import kill_node, nodes, start, status, stop
from cli.localbroker.errors import BrokerError
from cli.localbroker.jars import ensure_jars

__all__ = ["BrokerError", "ensure_jars", "kill_node", "nodes", "start", "status", "stop"]
