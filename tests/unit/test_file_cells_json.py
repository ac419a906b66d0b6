"""JSON documents (services.adapters.file_cells): a top-level array of objects parsed by pyarrow as it
stands finds exactly what the orjson path finds, at the same rows and columns; anything it cannot
parse is left to the orjson path."""
import orjson
import pytest

from harness.corpus import generate
from services.adapters.file_cells import FileFailed, Limits, _arrow_json_array, _json, _json_records
from services.domain.detectors import Engine

CARD, EMAIL = "4111 1111 1111 1111", "jane.doe@example.com"


def found(pieces):
    engine = Engine()
    pieces = list(pieces)
    return sorted((f.row, f.column, f.detector, f.start, f.end, f.masked)
                  for fs in engine.scan(pieces, [None] * len(pieces)) for f in fs)


def both(data: bytes, limits: Limits | None = None):
    limits = limits or Limits()
    return found(_json(data, limits)), found(_json_records(data, limits))


def test_the_corpus_json_files_give_the_same_findings_both_ways():
    corpus = generate(seed=7, files=40, rows=120)
    docs = [f.data for f in corpus.files if f.name.endswith(".json")]
    assert docs
    for data in docs:
        assert _arrow_json_array(data) is not None  # the fast path is the one taken
        fast, slow = both(data)
        assert fast == slow and fast


DOCS = {
    "nested objects and lists": [{"id": 1, "profile": {"contact": EMAIL}, "tags": ["x", CARD]},
                                 {"id": 2, "profile": {"contact": "none"}, "tags": []}],
    "a missing field, an int card": [{"a": EMAIL}, {"b": 4111111111111111}],
    "an empty object": [{"a": EMAIL}, {}, {"a": CARD}],
    "a field that changes type": [{"a": 1}, {"a": EMAIL}],
    "a null item": [{"a": EMAIL}, None],
    "not objects": [EMAIL, CARD],
    "objects and strings": [{"a": EMAIL}, CARD],
    "empty": [],
    "an object": {"a": EMAIL, "b": {"c": CARD}},
}


@pytest.mark.parametrize("name", DOCS)
def test_every_shape_gives_the_orjson_paths_findings(name):
    for data in (orjson.dumps(DOCS[name]), orjson.dumps(DOCS[name], option=orjson.OPT_INDENT_2)):
        fast, slow = both(data)
        assert fast == slow


def test_rows_count_on_across_batches():
    records = [{"n": str(i), "v": EMAIL if i % 3 == 0 else "x"} for i in range(10)]
    data = orjson.dumps(records, option=orjson.OPT_INDENT_2)
    fast, slow = both(data, Limits(batch_rows=4))
    assert fast == slow
    assert [row for row, *_ in fast] == [1, 4, 7, 10]


def test_malformed_json_fails_as_before():
    for data in (b'[{"a": "x"}, {"a": ', b'[{"a": "x"}] trailing'):
        assert _arrow_json_array(data) is None
        with pytest.raises(FileFailed) as fast:
            list(_json(data, Limits()))
        with pytest.raises(FileFailed) as slow:
            list(_json_records(data, Limits()))
        assert fast.value.reason == slow.value.reason
