"""`scanledger`: one console script for every process.

    scanledger up            broker (unless KAFKA_BOOTSTRAP_SERVERS), worker, projector, api
    scanledger api|worker|projector
    scanledger broker start|stop|status|fetch
    scanledger replay [--into URL]
    scanledger history SCAN_ID [--json]
    scanledger config-history [--table T] [--key K] [--json]
    scanledger verify [--scan SCAN_ID]
    scanledger dead-letters list [--limit N]
    scanledger schemas [--out DIR]
    scanledger db status|upgrade
    scanledger scan run|status|list|follow     the client commands, over HTTP (cli/client/)
    scanledger apply -f policy.yaml

This is the composition root, so it alone imports across streams/, projections/ and api/.
"""
from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import orjson

from cli.preflight import (
    StartError,
    check_data_dir,
    check_kafka_answers,
    check_log_level,
    check_port,
    open_database,
)
from cli.supervisor import Supervisor, install_stop_handlers
from services import logs
from services.settings import Settings


def _settings(args) -> Settings:
    if getattr(args, "data_dir", None):
        os.environ["SCANLEDGER_DATA_DIR"] = str(Path(args.data_dir).resolve())
    if getattr(args, "port", None):
        os.environ["SCANLEDGER_PORT"] = str(args.port)
    if getattr(args, "nodes", None):
        os.environ["SCANLEDGER_BROKER_NODES"] = str(args.nodes)
    return Settings.from_env()


def check_blobs(settings: Settings) -> None:
    """The blob store (SCANLEDGER_BLOB_URL) is written and read before a process that needs it starts:
    otherwise it exits 2 with one line naming the setting to fix (no traceback, nothing started)."""
    from services.adapters.blobstore import BlobSettingError, check_blob_store

    try:
        check_blob_store(settings)
    except BlobSettingError as exc:
        print(f"scanledger: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def check_kafka(settings: Settings, ask_broker: bool = True) -> None:
    """The Kafka security settings (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_SSL_*) are usable and the
    broker takes them before a process starts: otherwise it exits 2 with one line naming the setting."""
    from services.adapters.kafka_client import KafkaSettingError
    from services.adapters.kafka_client import check_kafka as check

    try:
        check(settings, ask_broker)
    except KafkaSettingError as exc:
        print(f"scanledger: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


@contextmanager
def known_schema():
    """A database newer than this code (a downgrade) stops the command: it exits 2 with one line saying
    what to do (no traceback, nothing started, nothing written)."""
    from services.stores.migrations import SchemaTooNew

    try:
        yield
    except SchemaTooNew as exc:
        print(f"scanledger: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def prepare_database(settings: Settings) -> None:
    """The database at this code's schema (services.stores.migrations) before a process that needs it starts."""
    from services import stores

    conn = open_database(settings.db_url)
    try:
        with known_schema():
            stores.init(conn, settings.admin_token)
    finally:
        conn.close()


def cmd_db(args) -> None:
    """`db status`: the database's schema version, the latest this code knows, the steps applied and still
    to apply; `db upgrade`: apply them now (every process that opens the database does at start)."""
    from services import stores
    from services.stores import migrations

    settings = _settings(args)
    conn = open_database(settings.db_url)
    try:
        with known_schema():
            if args.action == "upgrade":
                before = migrations.check(conn)
                stores.init(conn)
                print(f"schema version {migrations.version(conn)} (was {before})")
                return
            done = migrations.applied(conn)
            current = max(done, default=0)
            print(f"schema version {current}, this scanledger knows up to {migrations.LATEST}")
            for version, (name, applied_at) in sorted(done.items()):
                print(f"  {version:>3}  applied {applied_at}  {name}")
            for step in migrations.pending(conn):
                print(f"  {step.version:>3}  pending  {step.name}")
            migrations.check(conn)
    finally:
        conn.close()


def cmd_api(args) -> None:
    from cli.api_server import serve

    settings = _settings(args)
    check_data_dir(settings)
    check_port(args.host, settings.port)
    check_kafka(settings)
    check_blobs(settings)
    prepare_database(settings)
    serve(settings, args.host)


def cmd_worker(args) -> None:
    from services.adapters.arrow_memory import keep_freed_pages
    from streams.app import run_worker

    # Evaluators are throughput work: on a shared machine they yield the CPU to the API and
    # the projector, whose reads users are waiting on.
    os.nice(int(os.environ.get("SCANLEDGER_WORKER_NICE", "5")))
    keep_freed_pages()
    settings = _settings(args)
    check_log_level(args.loglevel)
    check_data_dir(settings)
    check_kafka(settings)
    check_blobs(settings)
    run_worker(settings, loglevel=args.loglevel)


def cmd_scan_worker(_args) -> None:
    from byoc.worker import main_from_env
    from services.adapters.arrow_memory import keep_freed_pages

    keep_freed_pages()
    raise SystemExit(main_from_env())


def cmd_projector(args) -> None:
    from projections.projector import run_forever

    settings = _settings(args)
    check_data_dir(settings)
    check_kafka(settings)
    prepare_database(settings)
    run_forever(settings)


def _instant(text: str) -> int:
    """An ISO 8601 time with its zone (`2026-11-30T12:00:00Z`) as epoch milliseconds."""
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        sys.exit(f"--as-of: not an ISO 8601 time: {text!r}")
    if moment.tzinfo is None:
        sys.exit(f"--as-of: give the time's zone (e.g. {text}Z)")
    return int(moment.timestamp() * 1000)


def cmd_replay(args) -> None:
    from cli.progress import metered
    from projections.parallel_replay import ReplayFailed
    from projections.replay import replay

    settings = _settings(args)
    # a database it cannot open is one line here, not a traceback after the log is read
    open_database(args.into or settings.db_url, "--into" if args.into else "SCANLEDGER_DATABASE_URL").close()
    as_of_ms = None if args.as_of is None else _instant(args.as_of)
    try:
        with known_schema(), metered("replay" if as_of_ms is None else f"replay as of {args.as_of}", "events") as meter:
            applied = replay(settings, args.into, as_of_ms, meter, args.helpers)
    except ReplayFailed as exc:  # one line, the last: run it again
        sys.exit(f"scanledger replay: {exc}")
    print(f"replayed {applied} events{'' if as_of_ms is None else f' as of {args.as_of}'} into"
          f" {args.into or settings.db_url}")


def cmd_history(args) -> None:
    from cli.progress import metered
    from services.audit.ledger import scan_ledger
    from services.domain.envelope import ACTOR_ID, ACTOR_ROLE, WORKER_ID

    settings = _settings(args)
    with metered("read the log") as meter:
        entries = scan_ledger(settings, args.scan_id, meter)
    if not entries:
        print(f"no record of scan {args.scan_id} on the log", file=sys.stderr)
        sys.exit(1)
    for e in entries:
        where = f"{e.topic}[{e.partition}]@{e.offset}"
        if e.event is None:
            print(orjson.dumps({"position": where, "unreadable": e.error}).decode() if args.json
                  else f"{where}  UNREADABLE: {e.error}")
            continue
        ev = e.event
        if args.json:
            print(orjson.dumps({"position": where, **ev}).decode())
            continue
        actor = (f"{ev[ACTOR_ROLE]} {ev[ACTOR_ID]}" + (f" worker {ev[WORKER_ID]}" if ev.get(WORKER_ID) else "")
                 if ev.get(ACTOR_ID) else ev.get("source", ""))
        print(f"{ev['time']}  {ev['type']:<42} {actor:<48} {where}")
    print(f"{len(entries)} events of scan {args.scan_id}", file=sys.stderr)


def cmd_config_history(args) -> None:
    from cli.progress import metered
    from services.audit.config_history import config_history
    from services.domain.envelope import ACTOR_ID, ACTOR_ROLE

    settings = _settings(args)
    with metered("read the log") as meter:
        versions = config_history(settings, args.table, args.key, meter)
    for v in versions:
        ev = v.event
        if args.json:
            print(orjson.dumps({"version": v.version, "logged_at": v.logged_at, "time": ev["time"],
                                "workspace_id": ev["workspaceid"], "actor_id": ev.get(ACTOR_ID),
                                "actor_role": ev.get(ACTOR_ROLE), "table": v.table, "key": v.key,
                                "row": v.row}).decode())
            continue
        actor = f"{ev[ACTOR_ROLE]} {ev[ACTOR_ID]}" if ev.get(ACTOR_ID) else "system"
        what = "deleted" if v.row is None else orjson.dumps(v.row).decode()
        print(f"v{v.version:<6} {ev['time']}  {actor:<46} {v.table}/{v.key}  {what}")
    print(f"{len(versions)} versions", file=sys.stderr)


def cmd_verify(args) -> None:
    from cli.progress import metered
    from services.audit.verify import verify

    settings = _settings(args)
    with metered("verify", "records") as meter:
        reports = verify(settings, args.scan, meter)
    failed = 0
    for r in reports:
        if r.ok:
            print(f"scan {r.scan_id}: ok, {r.verified} of {r.records} records vouched for by its chains, "
                  f"head {r.head or '(none)'}" + (f"; {len(r.unvouched)} not reached by them" if r.unvouched else ""))
        else:
            failed += 1
            print(f"scan {r.scan_id}: FAILED: {r.first_problem}"
                  + (f" (and {len(r.problems) - 1} more)" if len(r.problems) > 1 else ""))
            for _, what in sorted(r.problems)[1:args.show]:
                print(f"    {what}")
    if args.scan and not reports[0].records:
        sys.exit(f"no record of scan {args.scan} on the log")
    print(f"{len(reports)} scan(s), {failed} failed", file=sys.stderr)
    sys.exit(1 if failed else 0)


def cmd_dead_letters(args) -> None:
    from services.adapters.deadletter import list_dead_letters

    settings = _settings(args)
    letters = list_dead_letters(settings, limit=args.limit or None)
    for d in letters:
        value = d["value"]
        shown = "(no value)" if value is None else repr(value[:args.bytes]) + (" …" if len(value) > args.bytes else "")
        print(f"{d['source_topic']}[{d['source_partition']}]@{d['source_offset']}  consumer={d['consumer']}"
              f"  error={d['error']}\n    value ({0 if value is None else len(value)} bytes): {shown}")
    print(f"{len(letters)} dead letter(s) on {settings.topics.dead_letter}"
          + (f" (the newest {args.limit} at most)" if args.limit else ""))


def cmd_broker(args) -> None:
    from cli import localbroker

    settings = _settings(args)
    if args.action == "fetch":
        print(localbroker.ensure_jars(settings))
    elif args.action == "start":
        localbroker.start(settings)
        print(f"Kafka broker running at {settings.bootstrap_servers} (data in {settings.broker_dir})")
        if settings.broker_nodes > 1:
            print(f"a {settings.broker_nodes}-node cluster: topics get {settings.replicas} replicas, writes need "
                  f"{settings.min_insync} in sync; run the other processes with SCANLEDGER_BROKER_NODES="
                  f"{settings.broker_nodes} (or KAFKA_BOOTSTRAP_SERVERS={settings.bootstrap_servers} "
                  f"SCANLEDGER_REPLICATION_FACTOR={settings.replicas})")
    elif args.action == "stop":
        print("stopped" if localbroker.stop(settings) else "not running")
    else:
        print(orjson.dumps(localbroker.status(settings), option=orjson.OPT_INDENT_2).decode())


def cmd_schemas(args) -> None:
    from services.domain.contracts import json_schemas

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for type_, schema in json_schemas().items():
        (out / f"{type_}.json").write_bytes(orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    print(f"wrote {len(json_schemas())} schemas to {out}")


def admin_token(settings: Settings) -> str:
    """SCANLEDGER_ADMIN_TOKEN, or one generated once and kept in the data dir."""
    if settings.admin_token:
        return settings.admin_token
    path = settings.data_dir / "admin-token"
    if path.exists():
        return path.read_text().strip()
    token = "sl_" + secrets.token_urlsafe(24)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(token)
    path.chmod(0o600)
    return token


def cmd_up(args) -> None:
    """Everything on one machine. A setting that stops any part from starting (cli/preflight.py, the blob store,
    the broker's ports, a process that exits before the API is healthy) ends `up` with one line naming it,
    a non-zero exit and nothing left running."""
    from cli import localbroker
    from services.adapters import kafka_admin

    settings = _settings(args)
    # before anything starts: the API and the worker would only exit on them (the local broker is asked
    # once it runs, below)
    check_data_dir(settings)
    check_port(args.host, settings.port)
    check_kafka(settings, ask_broker=not settings.uses_local_broker)
    check_blobs(settings)
    token = admin_token(settings)
    os.environ["SCANLEDGER_ADMIN_TOKEN"] = token
    settings = Settings.from_env()
    prepare_database(settings)  # before the broker: a database newer than this code stops `up` with nothing started
    if not settings.uses_local_broker:
        check_kafka_answers(settings)
    logs = settings.data_dir / "logs"
    stop_asked = install_stop_handlers()  # from here a Ctrl-C stops what has started, in the finally below
    me = [sys.executable, "-m", "cli.main"]
    supervisor = Supervisor([("worker", [*me, "worker"]), ("projector", [*me, "projector"]),
                             ("api", [*me, "api", "--host", args.host])], logs, env=os.environ.copy(),
                            say=lambda line: print(line, file=sys.stderr, flush=True))
    started_broker = False
    try:
        if settings.uses_local_broker:
            print(f"starting the local Kafka broker on {settings.bootstrap_servers} …", flush=True)
            localbroker.start(settings)  # stops what it launched when it fails
            started_broker = True
            check_kafka(settings)  # its SCRAM users are those of its first start (README, "Secured Kafka")
        if not stop_asked():
            kafka_admin.ensure_topics(settings)
            supervisor.start()
        url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{settings.port}"
        _wait_healthy(url, supervisor, stop_asked)
        if not stop_asked():
            print(f"scan-ledger is up at {url}\n  admin token: {token}\n  data dir:    {settings.data_dir}\n"
                  f"  logs:        {logs}\nPress Ctrl-C to stop.", flush=True)
        while not stop_asked():
            supervisor.poll()  # a process that exits is restarted; the others keep running
            time.sleep(0.5)
    finally:
        print("stopping …", flush=True)
        supervisor.stop()
        if started_broker:
            localbroker.stop(settings)
        print("scan-ledger stopped.", flush=True)


def _wait_healthy(url: str, supervisor: Supervisor, stopping, timeout_s: float = 180) -> None:
    """Until the API answers /healthz; a process that exits before that, or no answer in time, is a StartError."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while not stopping():
        for child in supervisor.failed():
            raise StartError(f"the {child.name} exited with {child.process.returncode} while starting: "
                             f"{child.last_line()} (its log: {child.log_path})")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() >= deadline:
            raise StartError(f"the API did not answer at {url}/healthz within {timeout_s:.0f}s of starting "
                             f"(logs: {supervisor.logs})")
        time.sleep(0.5)


def build_parser() -> argparse.ArgumentParser:
    """Every `scanledger` command line (compose.yaml's commands are checked against it: tests/unit/test_compose.py)."""
    parser = argparse.ArgumentParser(prog="scanledger", description="An event-sourced ledger of data scans on Kafka.")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func, help_: str, data_dir: bool = True):
        p = sub.add_parser(name, help=help_)
        if data_dir:
            p.add_argument("--data-dir", help="data directory (default ./.scanledger or SCANLEDGER_DATA_DIR)")
        p.set_defaults(func=func)
        return p

    up = command("up", cmd_up, "start broker, worker, projector and API locally")
    up.add_argument("--port", type=int, help="API port (default 8000 or SCANLEDGER_PORT)")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--nodes", type=int, help="nodes of the local Kafka cluster (default 1 or SCANLEDGER_BROKER_NODES)")
    api = command("api", cmd_api, "serve the HTTP API")
    api.add_argument("--port", type=int)
    api.add_argument("--host", default="127.0.0.1")
    worker = command("worker", cmd_worker, "run a streams worker (coordinator + evaluators)")
    worker.add_argument("--loglevel", default=os.environ.get("SCANLEDGER_WORKER_LOGLEVEL", "warning"))
    command("projector", cmd_projector, "run the projector that builds the read models")
    command("scan-worker", cmd_scan_worker, "a BYOC scan's worker, configured by SCAN_ID, COORDINATOR_URL and"
            " AUTH_TOKEN (GET /api/v1/scans/:id/deployment-config)", data_dir=False)
    replay = command("replay", cmd_replay, "rebuild the read models from the ledger (projector stopped)")
    replay.add_argument("--into", help="database URL to rebuild into (default: the configured one)")
    replay.add_argument("--as-of", metavar="TIME",
                        help="only the log up to this instant, e.g. 2026-11-30T12:00:00Z (read models as they were)")
    replay.add_argument("--helpers", type=int, metavar="N",
                        help="processes that load the violations (default: one per core for a SQLite database and a"
                             " log of 100k violations or more; 0: the replay alone)")
    history = command("history", cmd_history, "one scan's ledger, read from the log: its commands and events")
    history.add_argument("scan_id")
    history.add_argument("--json", action="store_true", help="each event as JSON, one per line")
    config = command("config-history", cmd_config_history,
                     "every version of the config rows, read from the log (the versions a scan's RunScan names)")
    config.add_argument("--table", help="one table: policies, mappings, uploads, datastores, monitors, connectors, ...")
    config.add_argument("--key", help="one row, by its key (an id; a token's hash)")
    config.add_argument("--json", action="store_true", help="each version as JSON, one per line")
    verify = command("verify", cmd_verify, "recompute the scans' hash chains from the log: name what was changed")
    verify.add_argument("--scan", help="one scan (default: every scan on the log)")
    verify.add_argument("--show", type=int, default=10, help="problems shown per failed scan (default 10)")
    dead_letters = command("dead-letters", cmd_dead_letters, "the records consumers refused (dead-letter topic)")
    dead_letters.add_argument("action", choices=["list"])
    dead_letters.add_argument("--limit", type=int, default=100, help="the newest N (default 100; 0 for all)")
    dead_letters.add_argument("--bytes", type=int, default=80, help="bytes of each value shown (default 80)")
    broker = command("broker", cmd_broker, "the local Apache Kafka broker")
    broker.add_argument("action", choices=["start", "stop", "status", "fetch"])
    broker.add_argument("--nodes", type=int, help="nodes of the cluster: 1 (default, or SCANLEDGER_BROKER_NODES) or"
                        " e.g. 3, each a broker and a KRaft controller, topics replicated on up to 3")
    schemas = command("schemas", cmd_schemas, "write the JSON Schemas of every event", data_dir=False)
    schemas.add_argument("--out", default="docs/schemas")
    db = command("db", cmd_db, "the database's schema version (status) or bring it to this code's (upgrade)")
    db.add_argument("action", choices=["status", "upgrade"])
    client_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    logs.configure(logging.INFO)  # text, or JSON lines with SCANLEDGER_LOG_FORMAT=json (services/logs.py)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not every health poll of `up`
    logging.getLogger("botocore").setLevel(logging.WARNING)  # not "Found credentials in environment variables"
    args = build_parser().parse_args(argv)
    from cli.client import ClientError
    from cli.localbroker import BrokerError

    try:
        code = args.func(args)
    except BrokerError as exc:  # what to fix, not a traceback
        sys.exit(f"scanledger {args.command}: {exc}")
    except StartError as exc:
        print(f"scanledger {args.command}: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    except ClientError as exc:
        print(f"scanledger: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    if isinstance(code, int):  # the client commands' exit code (cli.client.EXIT_CODES)
        sys.exit(code)


def client_commands(sub) -> None:
    """`scan run|status|list|follow` and `apply`: a client of a running API (cli/client/)."""
    from cli import client

    formatter = argparse.RawDescriptionHelpFormatter
    epilog = f"{client.ENVIRONMENT}\n\n{client.EXIT_CODES}"

    def thresholds(p) -> None:
        p.add_argument("--fail-on-violations", type=int, metavar="N",
                       help="exit 1 when the scan finds more than N violations (findings, for a sensitive scan)")
        p.add_argument("--fail-on-severity", choices=client.SEVERITIES,
                       help="exit 1 when any violation is of this severity or worse (compliance and monitor scans)")

    scan = sub.add_parser("scan", help="run and follow scans through the API (SCANLEDGER_URL, SCANLEDGER_TOKEN)",
                          description="Run and follow scans through the HTTP API.", epilog=epilog,
                          formatter_class=formatter)
    actions = scan.add_subparsers(dest="action", required=True)
    run = actions.add_parser("run", help="start a scan; --wait follows it and exits by its result", epilog=epilog,
                             formatter_class=formatter, description="Start a compliance scan (--policy, --upload,"
                             " --mapping), a monitor scan of the workspace (--monitors) or a sensitive-data scan"
                             " (--connector). Without --wait it prints the scan id and exits 0.")
    run.add_argument("--policy", help="compliance scan: the policy id")
    run.add_argument("--upload", help="compliance scan: the upload id")
    run.add_argument("--mapping", help="compliance scan: the mapping id")
    run.add_argument("--audit-name", help="compliance scan: an audit name to file it under")
    run.add_argument("--monitors", action="store_true", help="a monitor scan: every enabled monitor of the workspace")
    run.add_argument("--connector", action="append", metavar="ID",
                     help="a sensitive-data scan of this connector (repeat for several)")
    run.add_argument("--incremental", action="store_true",
                     help="sensitive-data scan: only files new or changed since the last one")
    run.add_argument("--wait", action="store_true",
                     help="follow it to its end (a bar on a terminal, plain lines otherwise) and exit by its result")
    thresholds(run)
    run.set_defaults(func=client.cmd_scan_run)
    status = actions.add_parser("status", help="a scan's status and progress, once", epilog=client.ENVIRONMENT,
                                formatter_class=formatter)
    status.add_argument("scan_id", help="a compliance or monitor scan's id, or a sensitive scan's scan-…")
    status.add_argument("--json", action="store_true", help="the API's view of it, as JSON")
    status.set_defaults(func=client.cmd_scan_status)
    listing = actions.add_parser("list", help="the newest scans (the Activity list's runs of type scan)",
                                 epilog=client.ENVIRONMENT, formatter_class=formatter)
    listing.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    listing.add_argument("--result", action="append", choices=["queued", "running", "success", "failure", "aborted"],
                         help="only runs with this result (repeatable)")
    listing.add_argument("--json", action="store_true", help="each run as JSON, one per line")
    listing.set_defaults(func=client.cmd_scan_list)
    follow = actions.add_parser("follow", help="follow a scan until it is final; exit by its result", epilog=epilog,
                                formatter_class=formatter)
    follow.add_argument("scan_id")
    thresholds(follow)
    follow.set_defaults(func=client.cmd_scan_follow)
    apply = sub.add_parser("apply", help="policies and monitors as code: create or update them by name",
                           epilog=client.ENVIRONMENT + APPLY_EXAMPLE, formatter_class=formatter,
                           description="Create what the files name and the API lacks, update what differs (by name),"
                           " leave the rest: a second apply of the same files changes nothing and says so.")
    apply.add_argument("-f", "--file", action="append", required=True, metavar="FILE",
                       help="a YAML file of policies and monitors (repeatable; - for stdin)")
    apply.set_defaults(func=client.cmd_apply)


APPLY_EXAMPLE = """

a file (documents separated by ---; `kind` is policy unless it says monitor):
  name: AML basics
  rules:
    - {id: big, name: Large amount, type: threshold, severity: high,
       params: {field: amount, op: gt, value: 10000}}
  ---
  kind: monitor
  asset: orders.csv          # the asset's name or id
  name: Email nulls
  type: null_rate
  params: {column: email, max: 0.0}"""


if __name__ == "__main__":
    main()
