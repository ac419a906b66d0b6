"""A chunk's reads (services.runners.sensitive._ReadAhead): a group ahead of the detectors, on a few
threads, never more than two groups' files, with the same outcomes as reading in place."""
import threading

from services.adapters.connectors import ResourceError
from services.adapters.file_cells import SKIP_TOO_BIG, Limits
from services.domain.detectors import Engine
from services.runners.sensitive import _ReadAhead, groups, read_one, scan_group


class Source:
    """A connector's reads, counted; some names fail as a connector fails them."""

    def __init__(self, failing=None):
        self.read, self.failing, self.lock = [], failing or {}, threading.Lock()

    def read_bytes(self, name, max_bytes=None):
        with self.lock:
            self.read.append(name)
        if name in self.failing:
            raise ResourceError(name, self.failing[name])
        if name.endswith("boom.csv"):
            raise RuntimeError("a reader's own error")
        return b"email\njane.doe@example.com\n"


class Connectors:
    def __init__(self, source):
        self.source, self.snaps = source, {"conn-a": {"type": "local_dir"}}

    def get(self, connector_id):
        return self.source


def files(n, unchanged=()):
    return [{"connector_id": "conn-a", "name": f"f{i}.csv", "size": 1, "version": "v",
             **({"unchanged": True} if i in unchanged else {})} for i in range(n)]


def test_groups_come_in_order_with_their_reads_and_the_next_group_read_ahead():
    source = Source()
    listed = files(10, unchanged={3})
    ahead = _ReadAhead(Connectors(source), Limits(), groups(listed, max_files=4))
    seen = []
    try:
        for first, group in ahead:
            reads = ahead.results()
            assert [name for _, name in reads] == [f["name"] for f in group if not f.get("unchanged")]
            later = [f["name"] for f in listed[first + 2 * 4:]]
            assert not set(source.read) & set(later)  # never more than this group and the next
            seen.append((first, [f["name"] for f in group]))
    finally:
        ahead.close()
    assert seen == [(0, ["f0.csv", "f1.csv", "f2.csv", "f3.csv"]), (4, ["f4.csv", "f5.csv", "f6.csv", "f7.csv"]),
                    (8, ["f8.csv", "f9.csv"])]
    assert sorted(source.read) == sorted(f["name"] for f in listed if not f.get("unchanged"))  # once each


def test_after_stop_nothing_more_is_read():
    source = Source()
    ahead = _ReadAhead(Connectors(source), Limits(), groups(files(20), max_files=4))
    yielded = []
    for first, _group in ahead:
        if first == 0:
            ahead.results()
            ahead.stop()
        yielded.append(first)
    ahead.close()
    assert yielded == [0, 4, 8, 12, 16]  # every group is still given (its files skipped by the caller)
    assert set(source.read) <= {f"f{i}.csv" for i in range(8)}  # at most the group read ahead before the stop


def test_reads_ahead_give_the_outcomes_of_reads_in_place():
    source = Source({"f1.csv": "too_large", "f2.csv": "permission"})
    listed = [*files(3), {"connector_id": "conn-a", "name": "boom.csv", "size": 1, "version": "v"}]
    connectors, engine, limits = Connectors(source), Engine(), Limits()
    in_place = scan_group(connectors, listed, engine, limits)
    ahead = _ReadAhead(connectors, limits, groups(listed))
    try:
        [(_, group)] = list(ahead)
        read_ahead = scan_group(connectors, group, engine, limits, ahead.results())
    finally:
        ahead.close()
    assert [o[:3] for o in read_ahead] == [o[:3] for o in in_place] == [
        ("scanned", None, 27), ("skipped", SKIP_TOO_BIG, 0), ("failed", "permission", 0),
        ("failed", "unreadable: RuntimeError", 0)]
    assert [len(o[3]) for o in read_ahead] == [len(o[3]) for o in in_place] == [1, 0, 0, 0]
    assert read_one(connectors, listed[2], limits) == ("failed", "permission", 0, [])


def test_a_local_directorys_files_are_read_in_one_task_and_every_file_keeps_its_place():
    local, remote = Source({"f1.csv": "permission"}), Source({"f5.csv": "unavailable"})

    class Mixed(Connectors):
        def __init__(self):
            self.snaps = {"conn-a": {"type": "local_dir"}, "conn-s3": {"type": "s3"}}

        def get(self, connector_id):
            return local if connector_id == "conn-a" else remote

    listed = [{**f, "connector_id": "conn-s3"} if i % 3 == 2 else f for i, f in enumerate(files(9))]
    connectors, limits = Mixed(), Limits()
    ahead = _ReadAhead(connectors, limits, groups(listed, max_files=4))
    try:
        got = [read for _ in ahead for read in ahead.results()]
    finally:
        ahead.close()
    assert (sorted(local.read), sorted(remote.read)) == (["f0.csv", "f1.csv", "f3.csv", "f4.csv", "f6.csv", "f7.csv"],
                                                        ["f2.csv", "f5.csv", "f8.csv"])  # each once, by its own
    assert got == [read_one(connectors, f, limits) for f in listed]
    assert got[1] == ("failed", "permission", 0, []) and got[5] == ("failed", "unavailable", 0, [])
