"""The Faust streams app, wiring only: config, topics, the scans table, agents and timers.

Every decision is made in Faust-free modules beside it: the coordinator (coordinator.py), the
evaluator (evaluator.py), the record pipeline that decodes, retries, dead-letters and acks at
least once (record_handling.py, looped in agents.py) and the watchdogs (services/domain/watchdog.py,
read from Faust in watchdogs.py); a contract (.importlinter) keeps Faust and aiokafka out of
them. Faust's own commit and recovery bugs are fixed in faust_fixes.py.
"""
from __future__ import annotations

import faust

from services import logs
from services.adapters.abort_watch import AbortWatch
from services.adapters.blobstore import blob_store
from services.adapters.deadletter import DeadLetters
from services.adapters.kafka import Publisher
from services.domain.partitioning import partition_of
from services.domain.watchdog import Reoffers
from services.runners import plan_scan
from services.settings import Settings
from streams import agents, faust_fixes, watchdogs
from streams.coordinator import Coordinator
from streams.credentials import broker_credentials
from streams.evaluator import Evaluator
from streams.record_handling import RecordHandling

EVALUATORS = 2  # units evaluated at once per worker (pyarrow releases the GIL)
WATCH_EVERY_S = 5.0
MAX_OFFERS = 3  # a unit re-offered this often without a sign of life fails, so its scan can end


def create_app(settings: Settings) -> faust.App:
    faust_fixes.apply()
    app = faust.App(
        settings.streams_group, broker=f"kafka://{settings.bootstrap_servers}", store="memory://",
        broker_credentials=broker_credentials(settings.kafka_security),
        processing_guarantee="at_least_once", web_enabled=False, topic_partitions=settings.events_partitions,
        topic_replication_factor=settings.replicas, consumer_auto_offset_reset="earliest",
        broker_commit_every=100, broker_commit_interval=0.5, table_standby_replicas=0, stream_wait_empty=False,
        producer_linger_ms=1,
        # a crashed worker's partitions move to the others after 10 s, not the 60 s default
        broker_session_timeout=10.0, broker_heartbeat_interval=3.0,
        datadir=str(settings.data_dir / "streams"))  # not `<app id>-data` in the working directory
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    # One state per scan id, co-partitioned with commands and scan events (same key, same count).
    scans = app.Table("scans", default=None, partitions=settings.events_partitions,
                      key_type=str)  # values use the app default codec, json
    publisher, blobs, aborted = Publisher(settings), blob_store(settings), AbortWatch(settings)
    records = RecordHandling(DeadLetters(publisher, "streams", settings), settings.topics.commands)
    coordinator = Coordinator(scans, publisher, lambda request: plan_scan(request, blobs, settings),
                              Reoffers(settings.unit_reoffer_s, MAX_OFFERS), settings.topics,
                              lambda scan_id: partition_of(scan_id, settings.commands_partitions),
                              lambda unit_id: partition_of(unit_id, settings.work_partitions))
    # the evaluators publish a unit's violations in bursts, then flush: a producer of their own that reports
    # failures only (services.adapters.kafka.Publisher), so the coordinator never waits for their bursts
    evaluator = Evaluator(Publisher(settings, failures_only=True), blobs, settings, aborted)

    @app.task
    async def watch_aborts() -> None:
        aborted.start()

    app.agent(app.topic(settings.topics.commands, settings.topics.scan_events, **raw),
              name="coordinator")(agents.coordinate(records, coordinator))
    app.agent(app.topic(settings.topics.work, **raw),
              name="evaluator")(agents.evaluate_concurrently(records, evaluator.evaluate, EVALUATORS))
    app.timer(WATCH_EVERY_S)(watchdogs.reoffer_silent_units(app, settings, coordinator))
    app.timer(WATCH_EVERY_S)(watchdogs.exit_when_stalled(app, settings, records.activity))
    app.on_partitions_assigned.connect(watchdogs.watch_recovery(app, settings, WATCH_EVERY_S))
    return app


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    from services.adapters.kafka_admin import ensure_topics

    ensure_topics(settings)
    # Faust makes its own directory, not its parents: a worker on a data dir that is not there yet (the
    # preflight checked it may be made) would end in a traceback.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, logging_config=logs.dict_config(loglevel))
    # No terminal spinner: with one, faust sets the root logger to DEBUG (the spinner's handler
    # ticks on every record), so every debug call of aiokafka, botocore (~0.5 ms of CPU per S3
    # GET) and faust builds a LogRecord that no handler writes. The root stays at `loglevel`.
    worker.spinner = None
    worker.execute_from_commandline()
