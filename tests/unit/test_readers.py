import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from services.adapters.readers import (
    Dialect,
    InputError,
    detect_format,
    mapped_ipc,
    read_table,
    read_with_dialect,
    to_ipc,
)

CAP = 1000


def bad(data: bytes, fmt: str = "csv", cap: int = CAP) -> InputError:
    with pytest.raises(InputError) as caught:
        read_table(data, fmt, cap)
    return caught.value


def test_csv_infers_numbers_and_booleans_but_keeps_dates_as_text():
    table = read_table(b"id,amount,ok,when,day,name\n1,2.5,true,2024-01-01T10:00:00Z,2024-01-02,Ann\n"
                       b"2,3,false,2024-01-03T00:00:00+02:00,2024-01-04,Bob\n", "csv", CAP)
    assert table.schema == pa.schema([("id", pa.int64()), ("amount", pa.float64()), ("ok", pa.bool_()),
                                      ("when", pa.string()), ("day", pa.string()), ("name", pa.string())])
    assert table.to_pylist()[1] == {"id": 2, "amount": 3.0, "ok": False, "when": "2024-01-03T00:00:00+02:00",
                                    "day": "2024-01-04", "name": "Bob"}


def test_csv_empty_cells_are_null_but_na_text_is_kept():
    table = read_table(b"n,s\n1,x\n,\n3,NA\n", "csv", CAP)
    assert table.column("n").to_pylist() == [1, None, 3]
    assert table.column("s").to_pylist() == ["x", None, "NA"]


def test_csv_date_column_empty_in_the_first_block_still_stays_text():
    rows = b"a,d\n" + b"1,\n" * 400_000 + b"2,2024-01-01\n"  # > 1 MB of empty dates first
    table = read_table(rows, "csv", 10**6)
    assert table.schema.field("d").type == pa.string()
    assert table.column("d")[-1].as_py() == "2024-01-01"


@pytest.fixture
def threads_lose_a_block(monkeypatch):
    """pyarrow's threaded CSV reader failing as it did in CI: its type inference lost a block (UnknownError)."""
    from services.adapters import readers

    real, threaded = readers.pacsv.read_csv, []

    def read_csv(source, read_options=None, convert_options=None, **kw):
        if read_options.use_threads and not convert_options.include_columns:  # a read that infers types
            threaded.append(source)
            raise pa.ArrowException("Unknown error: a chunk failed converting for an unknown reason")
        return real(source, read_options=read_options, convert_options=convert_options, **kw)

    monkeypatch.setattr(readers.pacsv, "read_csv", read_csv)
    return threaded


def test_a_block_lost_by_threaded_type_inference_is_read_again_on_one_thread(threads_lose_a_block):
    data = b"id,amount,note\n" + b"".join(b"%d,%d.5,n%d\n" % (i, i, i) for i in range(5000)) + b"7,x,late text\n"
    table = read_table(data, "csv", 10**6)
    assert threads_lose_a_block  # the threaded read was tried, and failed
    assert table.schema.field("id").type == pa.int64() and table.schema.field("amount").type == pa.string()
    assert table.num_rows == 5001 and table.column("amount")[-1].as_py() == "x"
    # a real error in the file is still named, from the one-thread read
    assert bad(b"a,b\n1,2\n3,4,5,6\n").message == "CSV row 3 has 4 fields, expected 2"


def test_csv_bom_is_stripped():
    assert read_table(b"\xef\xbb\xbfa,b\n1,2\n", "csv", CAP).column_names == ["a", "b"]


def test_csv_quoted_values_may_span_lines():
    assert read_table(b'a,b\n1,"x\ny"\n', "csv", CAP).to_pylist() == [{"a": 1, "b": "x\ny"}]


def test_csv_header_problems():
    assert bad(b"a,,b\n1,2,3\n").message == "CSV header has an empty column name (column 2)"


def test_duplicate_header_names_are_made_unique_as_pandas_does():
    table, read_as = read_with_dialect(b"a,b,a,a,a.1\n1,2,3,4,5\n", "csv", CAP, as_text=True)
    assert table.column_names == ["a", "b", "a.2", "a.3", "a.1"]  # never a name the header has elsewhere
    assert table.to_pylist() == [{"a": "1", "b": "2", "a.2": "3", "a.3": "4", "a.1": "5"}]
    assert read_as["renamed_columns"] == {"a.2": "a", "a.3": "a"}


def test_dates_written_day_or_month_first_are_stored_as_iso_when_the_file_or_the_upload_says_which():
    def dates(data: bytes, order=None):
        table, read_as = read_with_dialect(data, "csv", CAP, as_text=True, dialect=Dialect(dates=order))
        return table.column("d").to_pylist(), read_as["dialect"]["dates"]

    assert dates(b"d\n15/01/2024\n3/2/2024 9:30\n\"\"\n2024-02-05T10:00:00Z\n") == (
        ["2024-01-15", "2024-02-03T09:30", None, "2024-02-05T10:00:00Z"], "DMY")  # 15: a day
    assert dates(b"d\n01/15/2024\n03.02.2024\n") == (["2024-01-15", "2024-03-02"], "MDY")  # 15: a day, second
    assert dates(b"d\n01/05/2024\n03/02/2024\n") == (["01/05/2024", "03/02/2024"], None)  # nothing tells: as is
    assert dates(b"d\n01/05/2024\n03/02/2024\n", "DMY") == (["2024-05-01", "2024-02-03"], "DMY")
    assert dates(b"d\n15/01/2024\nsoon\n") == (["15/01/2024", "soon"], None)  # not a date column


@pytest.mark.parametrize("data, dialect, delimiter, rows", [
    # a European export: ; between fields, decimal commas, a TOTAL line at the end
    (b"Txn;Amount;Date\nT1;1.234,56;2024-01-15\nT2;-99,5;2024-01-16\nTOTAL;1.135,06\n",
     Dialect(skip_footer=1), ";", [["T1", "1234.56", "2024-01-15"], ["T2", "-99.5", "2024-01-16"]]),
    # tabs; Windows-1252 text; a decimal comma said by the upload in a comma file (quoted)
    ("Name\tAmount\nJosé\t12,5\n".encode("cp1252"), Dialect(encoding="cp1252"), "\t", [["José", "12.5"]]),
    (b'Name,Amount\nA,"1.234,5"\n', Dialect(decimal=","), ",", [["A", "1234.5"]]),
    (b'Name,Amount\nA,"1,234.5"\n', Dialect(), ",", [["A", "1,234.5"]]),  # not a decimal comma: kept as written
    (b"a|b\n1|2\n", Dialect(), "|", [["1", "2"]]),
    ("a;b\n1;2\n".encode("utf-16"), Dialect(), ";", [["1", "2"]]),  # UTF-16 with its BOM
])
def test_csv_dialects_are_sniffed_or_said(data, dialect, delimiter, rows):
    table, read_as = read_with_dialect(data, "csv", CAP, as_text=True, dialect=dialect)
    assert [list(r.values()) for r in table.to_pylist()] == rows
    assert read_as["dialect"]["delimiter"] == delimiter


def test_csv_ragged_row_names_the_row():
    # The header is row 1, so "3,4,5" is row 3.
    assert bad(b"a,b\n1,2\n3,4,5\n").message == "CSV row 3 has 3 fields, expected 2"
    assert bad(b"a,b,c,d\n" + b"1,2,3,4\n" * 3 + b"1,2,3\n").message == "CSV row 5 has 3 fields, expected 4"
    assert bad(b"a,b\n1,2\n3\n").message == "CSV row 3 has 1 field, expected 2"


def test_csv_unclosed_quote_is_an_error_not_a_swallowed_file():
    assert bad(b'a,b\n1,"open\n3,4\n5,6\n').message == "CSV has a quoted field that is never closed"


def test_empty_file_but_header_only_is_fine():
    assert bad(b"").message == "file is empty"
    assert bad(b"\xef\xbb\xbf \n").message == "file is empty"
    table = read_table(b"a,b\n", "csv", CAP)
    assert table.num_rows == 0 and table.column_names == ["a", "b"]


def test_non_utf8_is_refused_with_the_offset():
    err = bad(b"a,b\n1,caf\xe9\n")
    assert err.status == 400 and "not UTF-8" in err.message and "offset 9" in err.message
    assert "not UTF-8" in bad(b'{"a": "\xff"}\n', "jsonl").message


def test_over_the_cap_is_413():
    err = bad(b"a\n" + b"1\n" * 11, cap=10)
    assert (err.status, err.message) == (413, "upload has more than 10 records")
    assert read_table(b"a\n" + b"1\n" * 10, "csv", 10).num_rows == 10
    assert bad(b"[" + b",".join([b'{"a":1}'] * 3) + b"]", "json", cap=2).status == 413


def test_json_array():
    table = read_table(b'[{"a": 1, "t": "2024-01-01T00:00:00Z"}, {"a": 2.5, "b": "x"}]', "json", CAP)
    assert table.schema == pa.schema([("a", pa.float64()), ("t", pa.string()), ("b", pa.string())])
    assert table.to_pylist() == [{"a": 1.0, "t": "2024-01-01T00:00:00Z", "b": None},
                                 {"a": 2.5, "t": None, "b": "x"}]
    assert read_table(b"[]", "json", CAP).num_rows == 0


def test_json_file_holding_json_lines_is_read_as_such():
    assert read_table(b'{"a": 1}\n{"a": 2}\n', "json", CAP).column("a").to_pylist() == [1, 2]


def test_jsonl():
    table = read_table(b'{"a": 1, "s": "x"}\n\n{"a": 2}\n', "jsonl", CAP)
    assert table.to_pylist() == [{"a": 1, "s": "x"}, {"a": 2, "s": None}]


def test_malformed_json():
    assert bad(b'[{"a": 1},', "json").message.startswith("malformed JSON: ")
    assert bad(b'"text"', "json").message == "JSON must be an array of objects"
    assert bad(b'[{"a": 1}, 2]', "json").message == "JSON record 2 is not an object"
    assert bad(b'[{"a": 1}, {"a": "x"}]', "json").message == \
        "JSON record 2: field 'a' is a string, earlier records have a number"
    assert bad(b'{"a": 1}\n{"a": \n', "jsonl").message.startswith("JSON Lines line 2 is not valid JSON: ")
    assert bad(b'{"a": 1}\n\n[1]\n', "jsonl").message == "JSON Lines line 3 is not an object"
    assert bad(b'[{"a": {"b": 1}}]', "json").message.startswith("column 'a' holds nested values")


def test_parquet_round_trip():
    source = pa.table({"a": [1, 2, 3], "c": pa.array(["x", "y", "x"]).dictionary_encode()})
    sink = io.BytesIO()
    pq.write_table(source, sink)
    table = read_table(sink.getvalue(), "parquet", CAP)
    assert table.schema.field("c").type == pa.string()  # categoricals arrive as plain values
    assert table.to_pylist() == source.to_pylist()
    assert bad(sink.getvalue(), "parquet", cap=2).status == 413
    assert bad(b"not parquet at all", "parquet").message.startswith("malformed Parquet: ")


def test_ipc_round_trip(tmp_path):
    for i, table in enumerate((pa.table({"a": [1, None], "s": ["x", None], "f": [1.5, 2.0]}),
                               pa.table({"a": pa.array([], pa.int64())}))):
        (tmp_path / f"{i}.arrow").write_bytes(to_ipc(table))
        assert mapped_ipc(tmp_path / f"{i}.arrow").equals(table)


def test_a_table_read_in_blocks_is_written_as_one_record_batch(tmp_path):
    """A unit takes its rows from the upload's file: from one batch, not from each of a CSV's blocks."""
    parts = pa.Table.from_batches([pa.record_batch({"s": [f"v{i}", None], "n": [i, 2 * i]}) for i in range(5)])
    path = tmp_path / "t.arrow"
    path.write_bytes(to_ipc(parts))
    assert pa.ipc.open_file(pa.memory_map(str(path))).num_record_batches == 1
    assert mapped_ipc(path).equals(parts)


@pytest.mark.parametrize("filename, content_type, fmt", [
    ("data.csv", None, "csv"), ("DATA.CSV", "application/json", "csv"), ("x.json", None, "json"),
    ("x.jsonl", None, "jsonl"), ("x.ndjson", "text/csv", "jsonl"), ("x.parquet", None, "parquet"),
    (None, "application/json; charset=utf-8", "json"), ("upload", "application/x-ndjson", "jsonl"),
    (None, "application/vnd.apache.parquet", "parquet"), ("x.dat", "text/csv", "csv"),
    (None, None, "csv"), ("upload", "application/octet-stream", "csv"),
])
def test_detect_format(filename, content_type, fmt):
    assert detect_format(filename, content_type) == fmt


@pytest.mark.parametrize("filename, content_type", [("notes.txt", None), ("notes.txt", "text/plain"),
                                                    ("book.xlsx", "application/octet-stream")])
def test_detect_format_refuses_other_file_types(filename, content_type):
    with pytest.raises(InputError) as caught:
        detect_format(filename, content_type)
    assert caught.value.status == 400 and "unsupported file type" in caught.value.message


def test_unknown_format_is_an_input_error():
    assert bad(b"a", "xlsx").message == "unsupported format 'xlsx'"
