"""JSON documents (services.adapters.file_cells): a top-level array of objects parsed by pyarrow as it
stands finds exactly what the orjson path finds, at the same rows and columns; anything it cannot
parse is left to the orjson path. Every value of nested JSON and of parquet lists is a place of
its own (issue 19): N values planted anywhere are N findings."""
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.corpus import generate
from services.adapters.file_cells import (
    FileFailed,
    Limits,
    _arrow_json,
    _arrow_json_array,
    _json,
    _json_records,
    scan_file,
)
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


# -- every value of nested JSON is its own place (issue 19): N planted, N found -------------------------

PLANT = "\x00plant"  # a leaf to be replaced by a value of its own
KEYS = st.text("abcxyz.[]\" _", min_size=0, max_size=4)
LEAVES = st.one_of(st.just(PLANT), st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False),
                   st.sampled_from(["", "hello", "n/a", "example.com", "4111", "@", "x@y"]))
DOCUMENT = st.recursive(LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                        st.dictionaries(KEYS, inner, max_size=5)), max_leaves=40)


def planted(doc, values):
    """`doc` with each PLANT leaf replaced by the next value of `values` (consumed)."""
    if doc == PLANT:
        return next(values)
    if isinstance(doc, list):
        return [planted(v, values) for v in doc]
    if isinstance(doc, dict):
        return {k: planted(v, values) for k, v in doc.items()}
    return doc


def plants(doc) -> int:
    if doc == PLANT:
        return 1
    if isinstance(doc, list):
        return sum(map(plants, doc))
    return sum(map(plants, doc.values())) if isinstance(doc, dict) else 0


def emails(n: int, same: bool):
    return iter(["jane.doe@example.com" if same else f"user{i}@example.com" for i in range(n)])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(DOCUMENT, min_size=1, max_size=6), st.booleans())
def test_n_values_planted_anywhere_in_nested_json_are_n_findings(docs, same):
    n = sum(map(plants, docs))
    values = emails(n, same)  # the same value everywhere too: each place is a finding of its own
    records = [planted(d, values) for d in docs]
    for name, data in (("a.json", orjson.dumps(records)), ("a.json", orjson.dumps(records, option=orjson.OPT_INDENT_2)),
                       ("a.jsonl", b"\n".join(map(orjson.dumps, records))), ("one.json", orjson.dumps(records[0]))):
        want = n if name != "one.json" else plants(docs[0])
        found = [f for f in scan_file(data, name).findings if f.detector == "email"]
        assert len(found) == want, (name, records)
        assert len({(f.row, f.column, f.start) for f in found}) == want  # n places: n finding ids


def test_a_list_item_has_its_index_in_its_column_whatever_the_path():
    doc = {"team": [{"mail": "n1@example.com"}, {"mail": "n2@example.com"}, {"mail": "n3@example.com"}],
           "cards": ["4111111111111111", "5500000000000004"], "a.b": {"c": ["x@example.com"]}}
    want = [(1, "team[0].mail"), (1, "team[1].mail"), (1, "team[2].mail"), (1, "cards[0]"), (1, "cards[1]"),
            (1, 'a.b.c[0]')]
    for name, data in (("d.json", orjson.dumps(doc)), ("d.json", orjson.dumps([doc])), ("d.jsonl", orjson.dumps(doc))):
        assert sorted((f.row, f.column) for f in scan_file(data, name).findings) == sorted(want), name


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.lists(st.booleans(), max_size=4), max_size=4), min_size=1, max_size=30))
def test_n_values_planted_in_parquet_lists_are_n_findings(shape):
    """A list<struct<mails: list<string>>> column and a list<string> one: every item found, each at its index."""
    values = emails(10_000, same=True)
    people, tags, n = [], [], 0
    for row in shape:
        people.append([{"mails": [next(values) if hit else "none" for hit in person]} for person in row])
        tags.append([next(values) if hit else "x" for person in row for hit in person])
        n += 2 * sum(hit for person in row for hit in person)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"people": people, "tags": tags}), sink)
    found = scan_file(sink.getvalue().to_pybytes(), "t.parquet").findings
    assert len(found) == n and len({(f.row, f.column) for f in found}) == n
    for f in found:
        if f.column.startswith("people"):
            i, j = (int(x) for x in f.column.removeprefix("people[").removesuffix("]").split("].mails["))
            assert people[f.row - 1][i]["mails"][j] == "jane.doe@example.com"


@pytest.mark.parametrize("name, data, where", [
    # pyarrow 26's JSON reader crashes the process (SIGSEGV) on this: the orjson path takes it
    ("a.jsonl", b'null\n{"a": "x@example.com"}\n', [(2, "a")]),
    ("a.jsonl", b'{"a": "x@example.com"}\n[1]\n"s"\n', [(1, "a")]),
    # a list whose first item is null: pyarrow 26 builds it broken (ArrowIndexError when read)
    ("a.json", b'[{"": [null, "x@example.com"]}]', [(1, '[""][1]')]),
    ("a.jsonl", b'{"a": [null, "x@example.com"]}\n', [(1, "a[1]")]),
    ("a.json", b'[{"a": [null, "x@example.com"]}]', [(1, "a[1]")]),
    # a key "": one path whichever parser read it
    ("a.jsonl", b'{"": {"": "x@example.com"}}', [(1, '[""][""]')]),
    ("a.jsonl", b'["x@example.com", {"a": ["y@example.com"]}]\n"z@example.com"\n', [(1, "[0]"), (1, "[1].a[0]"),
                                                                                    (2, "$")]),
    ("a.json", b'[{"k": {"a.b": "x@example.com", "a": {"b": "y@example.com"}}}]', [(1, 'k["a.b"]'), (1, "k.a.b")]),
])
def test_documents_pyarrow_mishandles_are_read_all_the_same(name, data, where):
    result = scan_file(data, name)
    assert result.status == "scanned" and sorted((f.row, f.column) for f in result.findings) == sorted(where)


@pytest.mark.parametrize("lines", [b'{"a": 1}\n\n{"a": 2}', b'{"a": 1}\nnull', b'{"a": 1}\n', b'{"a": 1}\n [1]',
                                   b'{"": 1}', b'{"a": {"": 1}}', b'{"a": [{"b": {"": "x"}}]}'])
def test_pyarrow_is_not_given_what_it_crashes_on_or_names_otherwise(lines):
    """Every line must open an object (pyarrow crashes on some that do not) and a key "" anywhere goes
    to the orjson path, which names its place [""]."""
    assert _arrow_json(lines) is None


def test_pyarrow_reads_json_lines_of_objects():
    assert _arrow_json(b'{"a": "x", "b": [{"c": 1}]}\n{"a": "y"}').num_rows == 2
