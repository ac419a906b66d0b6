import sqlite3

import pytest

from services.adapters.connectors.datastores import (
    AssetReadError,
    DatastoreError,
    list_containers,
    read_asset,
    resolve_path,
)


@pytest.fixture
def root(tmp_path):
    lake = tmp_path / "lake"
    (lake / "sub").mkdir(parents=True)
    (lake / "a.csv").write_text("x,y\n1,2\n")
    (lake / "sub" / "b.jsonl").write_text('{"k": 1}\n')
    (lake / "notes.txt").write_text("not data")
    (lake / "bad.csv").write_text('a,b\n1,2,3\n"open\n')
    db = sqlite3.connect(tmp_path / "shop.db")
    db.executescript("CREATE TABLE t (id INTEGER, price REAL, name TEXT, misc);"
                     "INSERT INTO t VALUES (1, 1.5, 'a', 'x'), (NULL, NULL, NULL, 2);"
                     "CREATE VIEW v AS SELECT * FROM t; CREATE TABLE \"odd \"\"name\" (z TEXT);")
    db.commit()
    db.close()
    return tmp_path


def test_paths_are_confined_to_the_root(root, tmp_path_factory):
    assert resolve_path(root, "lake", "local_dir") == (root / "lake").resolve()
    outside = tmp_path_factory.mktemp("outside")
    (root / "link").symlink_to(outside)
    for path in ("..", "../x", "/etc", "lake/../../x", "link"):
        with pytest.raises(DatastoreError, match="outside the datastore root"):
            resolve_path(root, path, "local_dir")
    with pytest.raises(DatastoreError, match="not a directory"):
        resolve_path(root, "shop.db", "local_dir")
    with pytest.raises(DatastoreError, match="not a file"):
        resolve_path(root, "lake", "sqlite")


def test_a_directory_lists_its_data_files_and_a_database_its_tables(root):
    assert list_containers("local_dir", root / "lake") == [("a.csv", "file"), ("bad.csv", "file"),
                                                           ("sub/b.jsonl", "file")]
    assert list_containers("sqlite", root / "shop.db") == [('odd "name', "table"), ("t", "table")]


def test_reading_files_and_tables(root):
    assert read_asset("local_dir", root / "lake", "a.csv", 10).num_rows == 1
    assert read_asset("local_dir", root / "lake", "sub/b.jsonl", 10).column_names == ["k"]
    table = read_asset("sqlite", root / "shop.db", "t", 10)
    assert table.to_pydict() == {"id": [1, None], "price": [1.5, None], "name": ["a", None], "misc": ["x", "2"]}
    assert str(table.schema.field("id").type) == "int64"
    assert read_asset("sqlite", root / "shop.db", 'odd "name', 10).num_rows == 0


@pytest.mark.parametrize("kind,name,message", [
    ("local_dir", "bad.csv", "cannot read"), ("local_dir", "gone.csv", "not found"),
    ("local_dir", "../shop.db", "not found"), ("sqlite", "missing", "not found")])
def test_unreadable_assets_are_clear_errors(root, kind, name, message):
    path = root / ("lake" if kind == "local_dir" else "shop.db")
    with pytest.raises(AssetReadError, match=message):
        read_asset(kind, path, name, 10)


def test_too_many_rows_is_an_error(root):
    with pytest.raises(AssetReadError, match="more than 1 rows"):
        read_asset("sqlite", root / "shop.db", "t", 1)
