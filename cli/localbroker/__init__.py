"""The project's own Kafka broker, one node or a local cluster, for `scanledger up` and the tests (see broker.py)."""
from cli.localbroker.broker import BrokerError, ensure_jars, kill_node, nodes, start, status, stop

__all__ = ["BrokerError", "ensure_jars", "kill_node", "nodes", "start", "status", "stop"]
