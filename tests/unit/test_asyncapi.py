"""docs/asyncapi.yaml says what the code does: every topic with its key, partitions and retention,
every event type with its schema file, nothing missing and nothing extra. (Which type is on which
topic is checked on a real scan's records: tests/e2e/test_cloudevents_consumers.py.)"""
from pathlib import Path

import yaml

from services.adapters.kafka_admin import topic_specs
from services.domain import contracts as c
from services.domain.command_expiry import EXPIRES
from services.domain.envelope import ACTOR_ID, ACTOR_ROLE, CONTENT_TYPE, TYPE_HEADER, WORKER_ID, make_event
from services.domain.ledger_chain import COVERS, PREV, SEQ, STREAM
from services.settings import Settings, Topics

DOCS = Path(__file__).resolve().parents[2] / "docs"
DOC = yaml.safe_load((DOCS / "asyncapi.yaml").read_text())
TOPICS = Topics("{prefix}")  # the addresses, with the prefix as the document's parameter
TOPIC_NAMES = [name for name in dir(Topics) if isinstance(getattr(Topics, name), property)]


def resolve(ref: str) -> dict:
    node = DOC
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_it_is_asyncapi_3_with_the_cloudevents_content_type():
    assert DOC["asyncapi"] == "3.0.0" and DOC["defaultContentType"] == CONTENT_TYPE
    headers = DOC["components"]["schemas"]["Headers"]
    assert headers["properties"]["content-type"]["const"] == CONTENT_TYPE
    assert set(headers["required"]) == {"content-type", TYPE_HEADER}


def test_every_topic_is_a_channel_with_its_partitions_and_retention():
    channels = DOC["channels"]
    assert sorted(channels) == sorted(TOPIC_NAMES)
    specs = {spec.topic: spec for spec in topic_specs(Settings(topics=TOPICS))}
    for name, channel in channels.items():
        spec = specs[getattr(TOPICS, name)]
        kafka = channel["bindings"]["kafka"]
        assert channel["address"] == kafka["topic"] == spec.topic, name
        assert kafka["partitions"] == spec.num_partitions, name
        assert kafka["topicConfiguration"] == {"cleanup.policy": [spec.config["cleanup.policy"]],
                                               "retention.ms": int(spec.config["retention.ms"])}, name
        assert channel.get("x-message-timestamp-type") == spec.config.get("message.timestamp.type"), name
        assert channel["x-key"] in DOC["components"]["schemas"] and channel["x-ordering"], name
        assert channel["parameters"] == {"prefix": {"$ref": "#/components/parameters/prefix"}}
    assert DOC["components"]["parameters"]["prefix"]["default"] == Topics().prefix


def test_every_event_type_is_a_message_on_one_channel_with_its_key_and_schema():
    on_channels = [m["$ref"].rsplit("/", 1)[-1] for ch in DOC["channels"].values() for m in ch["messages"].values()]
    assert sorted(on_channels) == sorted([*c.MODELS, "dead-letter"])  # each once: one topic per type
    assert sorted(DOC["components"]["messages"]) == sorted(on_channels)
    for name, channel in DOC["channels"].items():
        for message_name, ref in channel["messages"].items():
            message = resolve(ref["$ref"])
            assert message_name == message["name"]
            # inline, not a $ref: the AsyncAPI 3.0.0 schema takes a $ref there for both a schema and a
            # Reference, which its oneOf refuses
            assert message["bindings"]["kafka"]["key"] == DOC["components"]["schemas"][channel["x-key"]], name
    for type_ in c.MODELS:
        message = DOC["components"]["messages"][type_]
        assert message["contentType"] == CONTENT_TYPE
        envelope, own = message["payload"]["allOf"]
        assert envelope == {"$ref": "#/components/schemas/CloudEvent"}
        assert own["properties"]["type"] == {"const": type_}
        assert own["properties"]["data"] == {"$ref": f"./schemas/{type_}.json"}


def test_the_schema_files_are_exactly_those_the_messages_name():
    named = {m["payload"]["allOf"][1]["properties"]["data"]["$ref"] for m in DOC["components"]["messages"].values()
             if "allOf" in m["payload"]}
    assert named == {f"./schemas/{p.name}" for p in (DOCS / "schemas").glob("*")}


def test_the_envelope_names_every_attribute_we_write():
    envelope = DOC["components"]["schemas"]["CloudEvent"]
    written = make_event(c.SCAN_FINISHED, "s", {}, id="i", source="x", workspace_id="w")
    assert set(envelope["required"]) == set(written)
    assert set(envelope["properties"]) == {*written, ACTOR_ID, ACTOR_ROLE, WORKER_ID, EXPIRES, STREAM, SEQ, PREV,
                                           COVERS}
    assert envelope.get("additionalProperties") is not False  # extension attributes may be added


def test_the_compatibility_policy_points_at_its_check():
    policy = DOC["x-compatibility"]
    root = DOCS.parent
    assert (root / policy["schemas"]).is_dir() and (root / policy["baseline"]).is_dir()
    assert (root / policy["check"].split()[0]).is_file()
    assert {"policy", "consumers", "producers"} <= set(policy)
