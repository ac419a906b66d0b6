"""Follow what scans find: every violation and finding scan-ledger writes, as CloudEvents.

A downstream consumer of your own, with nothing of scan-ledger's code: confluent-kafka reads the
records, the CloudEvents SDK turns each into an event (our records are CloudEvents in structured
mode: docs/asyncapi.yaml). It prints one line per event and commits its offsets as it goes, so a
restart goes on where it stopped; a record that is not a CloudEvent is named on stderr and skipped.

    pip install confluent-kafka 'cloudevents>=2.2'
    python examples/consumer.py                       # next to `scanledger up`: 127.0.0.1:9092
    python examples/consumer.py --from-beginning --scan <scan_id> --count 12

Settings: KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092), SCANLEDGER_TOPIC_PREFIX (default
scanledger) and a secured Kafka's KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_* and KAFKA_SSL_* (librdkafka's
settings of the same names), as the scan-ledger processes read them; the options below.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys

from cloudevents.core.bindings.kafka import KafkaMessage, from_kafka_event, from_structured_event
from confluent_kafka import Consumer, KafkaException

VIOLATION, FINDING = "scanledger.violation.detected.v1", "scanledger.finding.detected.v1"
SECURITY = {"KAFKA_SECURITY_PROTOCOL": "security.protocol", "KAFKA_SASL_MECHANISM": "sasl.mechanism",
            "KAFKA_SASL_USERNAME": "sasl.username", "KAFKA_SASL_PASSWORD": "sasl.password",
            "KAFKA_SSL_CA_LOCATION": "ssl.ca.location", "KAFKA_SSL_CERTIFICATE_LOCATION": "ssl.certificate.location",
            "KAFKA_SSL_KEY_LOCATION": "ssl.key.location", "KAFKA_SSL_KEY_PASSWORD": "ssl.key.password"}


def security(environ) -> dict[str, str]:
    """librdkafka's security settings from the environment (SASL's mechanism is PLAIN unless set, as
    scan-ledger's)."""
    config = {key: environ[name] for name, key in SECURITY.items() if environ.get(name)}
    if config.get("security.protocol", "").upper().startswith("SASL_"):
        config.setdefault("sasl.mechanism", "PLAIN")
    return config


def options(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Print the violations and findings scan-ledger writes.")
    p.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "127.0.0.1:9092")
    p.add_argument("--prefix", default=os.environ.get("SCANLEDGER_TOPIC_PREFIX") or "scanledger")
    p.add_argument("--group", default="scanledger-example-consumer",
                   help="consumer group: the offsets it committed are where it goes on")
    p.add_argument("--from-beginning", action="store_true",
                   help="read each topic from its start (a group with no offsets yet); default: only what comes")
    p.add_argument("--scan", action="append", default=[], help="only this scan's events (repeatable)")
    p.add_argument("--count", type=int, default=0, help="stop after printing this many events (0: never)")
    return p.parse_args(argv)


def cloudevent(message):
    """The CloudEvent of a record: the SDK tells structured from binary mode by the headers.
    Records written before scan-ledger set `content-type` and `scanledger-type` carry only a
    `ce_type` header, which the SDK takes for binary mode; they are structured, so read them so."""
    headers = dict(message.headers() or [])
    kafka_message = KafkaMessage(headers=headers, key=message.key(), value=message.value())
    if "ce_type" in headers:
        return from_structured_event(kafka_message)
    return from_kafka_event(kafka_message)


def line(event) -> str:
    """One line a person reads: when, what, which scan, and the event's own fields."""
    data, kind = event.get_data(), event.get_type()
    if kind == VIOLATION:
        what = (f"violation {data['rule_id']} ({data['severity']}) account={data['account']} "
                f"record={data['record_index']} signature={data['signature']}")
    elif kind == FINDING:
        what = (f"finding {data['detector']} ({data['family']}, {data['confidence']}) {data['file']} "
                f"{data['masked']}")
    else:  # a type this consumer was not written for: the policy says skip it, not fail
        what = kind
    return f"{event.get_time().isoformat()} scan={event.get_subject()} id={event.get_id()} {what}"


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group, **security(os.environ),
                         "auto.offset.reset": "earliest" if args.from_beginning else "latest",
                         "enable.auto.commit": True, "enable.auto.offset.store": False})
    topics = [f"{args.prefix}.violations", f"{args.prefix}.findings"]
    consumer.subscribe(topics)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    print(f"following {', '.join(topics)} on {args.bootstrap}", file=sys.stderr, flush=True)
    printed = 0
    try:
        while not stopping and not (args.count and printed >= args.count):
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            try:
                event = cloudevent(message)
            except Exception as exc:  # not a CloudEvent (someone else's record on the topic): say so, go on
                print(f"skipped {message.topic()}[{message.partition()}]@{message.offset()}: not a CloudEvent "
                      f"({type(exc).__name__}: {exc})", file=sys.stderr, flush=True)
                event = None
            if event is not None and (not args.scan or event.get_subject() in args.scan):
                print(line(event), flush=True)
                printed += 1
            consumer.store_offsets(message)  # committed (auto, in the background) once printed: at least once
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()  # commits what was stored, and leaves the group at once
    return 0


if __name__ == "__main__":
    sys.exit(main())
