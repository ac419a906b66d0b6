"""GET /metrics: Prometheus's text format, computed at scrape time from the read models and Kafka.

Scan counts, durations, violations and findings are read from the database every scrape (a few
aggregate queries, no per-process counters), so every API process over one database answers the
same figures. Consumer lag is read from Kafka (the worker's group) and from the projector's
offsets in the database. HTTP latency is this process's own histogram (api/web/http_metrics.py).

Unauthenticated, like /healthz: only aggregates, by kind and status, never a workspace's name or
id, a scan's id or a record (docs/decisions.md, "GET /metrics without a token").
"""
from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from api.health import lag_totals
from api.operations.queries import ANOMALIES, IS_SENSITIVE
from api.web.db_work import run_db

DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600)
SECONDS = "((julianday({t}.finished_at) - julianday({t}.started_at)) * 86400.0)"
LIVE = "s.deleted_at IS NULL"  # a deleted run is gone from the API: gone from the figures too


def _histogram_sql(table: str, alias: str, kind: str, where: str) -> str:
    d = SECONDS.format(t=alias)
    buckets = ", ".join(f"SUM(CASE WHEN {d} <= {b} THEN 1 ELSE 0 END) AS le{i}" for i, b in enumerate(DURATION_BUCKETS))
    return (f"SELECT {kind} AS kind, COUNT(*) AS n, COALESCE(SUM({d}), 0) AS total, {buckets} FROM {table} {alias}"
            f" WHERE {alias}.started_at IS NOT NULL AND {alias}.finished_at IS NOT NULL AND {where} GROUP BY {kind}")


SCANS_SQL = (f"SELECT s.kind AS kind, s.status AS status, COUNT(*) AS n FROM rm_scans s WHERE {LIVE}"
             " GROUP BY s.kind, s.status")
SCAN_SECONDS_SQL = _histogram_sql("rm_scans", "s", "s.kind", LIVE)
UNIT_SECONDS_SQL = _histogram_sql("rm_units", "u", "COALESCE(u.scan_kind, '')", "1 = 1")
ANOMALIES_SQL = (f"SELECT s.kind AS kind, {IS_SENSITIVE} AS sensitive, COALESCE(SUM({ANOMALIES}), 0) AS n"
                 f" FROM rm_scans s WHERE {LIVE} GROUP BY s.kind")


def _histogram(name: str, doc: str, rows) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=("kind",))
    for r in rows:
        buckets = [(str(float(b)), r[f"le{i}"] or 0) for i, b in enumerate(DURATION_BUCKETS)]
        family.add_metric([r["kind"]], [*buckets, ("+Inf", r["n"])], float(r["total"]))
    return family


def read_model_families(db) -> list:
    """The figures of the read models, as Prometheus metric families (run on a database thread)."""
    scans = GaugeMetricFamily("scanledger_scans", "Scans in the read models by kind and status",
                              labels=("kind", "status"))
    for r in db.execute(SCANS_SQL):
        scans.add_metric([r["kind"], r["status"]], r["n"])
    violations = GaugeMetricFamily("scanledger_violations", "Violations found by the scans, by scan kind",
                                   labels=("kind",))
    findings = GaugeMetricFamily("scanledger_sensitive_findings", "Sensitive-data findings of the scans",
                                 labels=("kind",))
    for r in db.execute(ANOMALIES_SQL):
        (findings if r["sensitive"] else violations).add_metric([r["kind"]], r["n"])
    return [scans, violations, findings,
            _histogram("scanledger_scan_duration_seconds", "Finished scans' durations, started to finished",
                       db.execute(SCAN_SECONDS_SQL)),
            _histogram("scanledger_unit_duration_seconds", "Finished units' durations, started to finished",
                       db.execute(UNIT_SECONDS_SQL))]


def lag_family(lags: dict[str, dict[str, int]] | None) -> GaugeMetricFamily:
    family = GaugeMetricFamily("scanledger_consumer_lag", "Records left to consume, by component and topic",
                               labels=("component", "topic"))
    for component, per_topic in (lags or {}).items():
        for topic, n in sorted(per_topic.items()):
            family.add_metric([component, topic], n)
    return family


def broker_up_family(up: bool) -> GaugeMetricFamily:
    family = GaugeMetricFamily("scanledger_kafka_up", "1 when the broker answered this scrape's lag queries")
    family.add_metric([], 1 if up else 0)
    return family


class _Families:
    def __init__(self, families: list):
        self.families = families

    def collect(self):
        yield from self.families


def _lags_or_none(settings) -> dict | None:
    try:
        return lag_totals(settings)
    except Exception:  # the broker is away: scanledger_kafka_up says so, the DB figures still answer
        return None


async def metrics(request: Request) -> Response:
    state = request.state
    families, lags = await asyncio.gather(run_db(request, read_model_families, state.db),
                                          asyncio.to_thread(_lags_or_none, state.settings))
    scraped = CollectorRegistry()
    scraped.register(_Families([*families, lag_family(lags), broker_up_family(lags is not None)]))
    return Response(generate_latest(REGISTRY) + generate_latest(scraped), media_type=CONTENT_TYPE_LATEST)
