"""The local broker's cluster layout: ports, directories, each node's configuration, the topics'
replication that follows from it, and a data dir formatted for another node count refused."""
import pytest

from cli.localbroker.broker import BrokerError, _cluster_id_for, _server_properties, nodes
from services.settings import Settings


def props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def test_a_single_node_keeps_the_data_dirs_broker_layout(tmp_path):
    settings = Settings(data_dir=tmp_path, broker_port=30000)
    [node] = nodes(settings)
    assert (node.dir, node.port, node.controller_port) == (tmp_path / "kafka", 30000, 30001)
    conf = props(_server_properties(node, [node]))
    assert conf["controller.quorum.voters"] == "1@127.0.0.1:30001"
    assert (conf["offsets.topic.replication.factor"], conf["min.insync.replicas"]) == ("1", "1")
    assert settings.bootstrap_servers == "127.0.0.1:30000"
    assert (settings.replicas, settings.min_insync) == (1, 1)


def test_three_nodes_are_a_quorum_with_topics_on_three_replicas_two_in_sync(tmp_path):
    settings = Settings(data_dir=tmp_path, broker_port=30000, broker_nodes=3)
    cluster = nodes(settings)
    assert [(n.id, n.port, n.dir.name) for n in cluster] == [(1, 30000, "node-1"), (2, 30002, "node-2"),
                                                            (3, 30004, "node-3")]
    for node in cluster:
        conf = props(_server_properties(node, cluster))
        assert conf["node.id"] == str(node.id)
        assert conf["controller.quorum.voters"] == "1@127.0.0.1:30001,2@127.0.0.1:30003,3@127.0.0.1:30005"
        assert conf["listeners"] == f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.port + 1}"
        assert conf["log.dirs"] == str(node.dir / "logs")
        assert conf["offsets.topic.replication.factor"] == "3"
        assert conf["min.insync.replicas"] == conf["transaction.state.log.min.isr"] == "2"
    assert settings.bootstrap_servers == "127.0.0.1:30000,127.0.0.1:30002,127.0.0.1:30004"
    assert (settings.replicas, settings.min_insync) == (3, 2)


def test_replication_follows_the_cluster_up_to_three_unless_set(tmp_path):
    assert Settings(broker_nodes=2).replicas == 2 and Settings(broker_nodes=2).min_insync == 1
    assert Settings(broker_nodes=5).replicas == 3
    # any other Kafka: what the operator sets (1 when unset: a single broker accepts nothing more)
    assert Settings(kafka_bootstrap="k1:9092,k2:9092").replicas == 1
    assert Settings(kafka_bootstrap="k1:9092", replication_factor=3).min_insync == 2
    assert Settings(kafka_bootstrap="k1:9092", replication_factor=3, min_insync_replicas=3).min_insync == 3


def test_a_cluster_keeps_one_id_and_refuses_another_node_count(tmp_path):
    three = Settings(data_dir=tmp_path, broker_nodes=3)
    first = _cluster_id_for(three, nodes(three))
    assert _cluster_id_for(three, nodes(three)) == first
    one = Settings(data_dir=tmp_path)
    with pytest.raises(BrokerError, match="is for 3 node"):
        _cluster_id_for(one, nodes(one))


def test_a_single_nodes_storage_is_not_started_as_a_cluster(tmp_path):
    (tmp_path / "kafka" / "logs").mkdir(parents=True)
    (tmp_path / "kafka" / "logs" / "meta.properties").write_text("cluster.id=x\n")
    three = Settings(data_dir=tmp_path, broker_nodes=3)
    with pytest.raises(BrokerError, match="SCANLEDGER_BROKER_NODES=1"):
        _cluster_id_for(three, nodes(three))


def test_the_compose_cluster_file_is_one_quorum_of_three_that_the_system_writes_to_on_three_replicas():
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[2]
    base = yaml.safe_load((root / "compose.yaml").read_text())["services"]
    over = yaml.safe_load((root / "compose.cluster.yaml").read_text())["services"]
    brokers = {name: svc for name, svc in over.items() if name.startswith("kafka")}
    hosts = {name: svc.get("hostname") or base[name]["hostname"] for name, svc in brokers.items()}
    ids = {name: svc["environment"]["KAFKA_NODE_ID"] for name, svc in brokers.items()}
    assert sorted(ids.values()) == ["1", "2", "3"]
    for name, svc in brokers.items():
        env = svc["environment"]
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == ",".join(f"{ids[n]}@{hosts[n]}:9093" for n in brokers)
        assert env["KAFKA_ADVERTISED_LISTENERS"].startswith(f"PLAINTEXT://{hosts[name]}:9092,")
        assert (env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"], env["KAFKA_MIN_INSYNC_REPLICAS"]) == ("3", "2")
        assert svc["volumes"][0].split(":")[1] == "/var/lib/kafka/data"
    assert len({svc["volumes"][0] for svc in brokers.values()}) == 3  # a volume per node
    apps = [over[name]["environment"] for name in ("api", "worker", "projector")]
    assert all(app == apps[0] for app in apps)
    app = apps[0]
    assert app["KAFKA_BOOTSTRAP_SERVERS"] == ",".join(f"{hosts[n]}:9092" for n in brokers)
    settings = Settings(kafka_bootstrap=app["KAFKA_BOOTSTRAP_SERVERS"],
                        replication_factor=int(app["SCANLEDGER_REPLICATION_FACTOR"]))
    assert (settings.replicas, settings.min_insync) == (3, int(app["SCANLEDGER_MIN_INSYNC_REPLICAS"]))
