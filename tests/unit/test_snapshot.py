"""A view built from several queries reads one state of the database (services.adapters.db.snapshot),
even while another connection (the projector) commits between its queries."""
from __future__ import annotations

from services.adapters.db import connect, snapshot, transaction


def test_reads_inside_a_snapshot_do_not_see_a_commit_made_between_them(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    api, projector = connect(url), connect(url)
    api.execute("CREATE TABLE units (id TEXT PRIMARY KEY, status TEXT)")
    api.execute("INSERT INTO units VALUES ('u0', 'running')")

    def finish():
        with transaction(projector):
            projector.execute("UPDATE units SET status = 'failed' WHERE id = 'u0'")

    with snapshot(api):
        chosen = api.execute("SELECT id FROM units WHERE status = 'running'").fetchone()[0]
        finish()  # the projector commits between the view's two reads
        status = api.execute("SELECT status FROM units WHERE id = ?", (chosen,)).fetchone()[0]
    assert status == "running"  # the run chosen as current is still the one it read
    assert api.execute("SELECT status FROM units").fetchone()[0] == "failed"  # and after it, the commit shows
