"""rm_asset_profiles: each asset's columns and row count, as its latest sync found them."""
from __future__ import annotations

from services.domain import contracts as c
from services.readmodels.record import Record, to_json

TABLES = ("rm_asset_profiles",)


def unit_finished(conn, rec: Record) -> None:
    """A later sync's profile replaces an earlier one, whichever arrives last."""
    d = rec.event["data"]
    conn.executemany(
        "INSERT INTO rm_asset_profiles (container_id, scan_id, columns, row_count, synced_at)"
        " VALUES (:container_id, :scan_id, :columns, :row_count, :synced_at)"
        " ON CONFLICT(container_id) DO UPDATE SET scan_id = excluded.scan_id, columns = excluded.columns,"
        " row_count = excluded.row_count, synced_at = excluded.synced_at"
        " WHERE excluded.synced_at >= rm_asset_profiles.synced_at",
        [{"container_id": p["container_id"], "scan_id": d["scan_id"], "columns": to_json(p["columns"]),
          "row_count": p["row_count"], "synced_at": rec.event["time"]} for p in d.get("profile", [])])


HANDLERS = {
    c.UNIT_COMPLETED: unit_finished,
    c.UNIT_FAILED: unit_finished,
}
