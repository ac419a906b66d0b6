"""A compliance scan over an export as users have them (issue 20), on the real broker: a BOM, currency
symbols and thousands separators in amounts, amounts and dates that do not read, quoted notes with
line breaks, ~3,000 rows over several units. Every expected count is computed here, independently,
from the rows as the test wrote them: the violations of each rule, the records each rule could not
judge (left out of it, counted, with sample rows), the score. Waits poll: no time limits."""
from __future__ import annotations

import csv
import io
import random
from collections import Counter
from datetime import datetime

from harness import data
from tests.e2e.helpers import all_violations, confirm, policy, run, upload, wait_settled
from tests.e2e.monitor_fixtures import in_workspace, sync, wait_finished

ROWS = 3000
RULES = [
    {"id": "big", "name": "Large amount", "type": "threshold", "severity": "high",
     "params": {"field": "amount", "op": "gt", "value": 9000}},
    {"id": "band", "name": "Amount band", "type": "range", "severity": "low",
     "params": {"field": "amount", "min": 0, "max": 9999}},
    {"id": "vel", "name": "Daily velocity", "type": "velocity", "severity": "medium",
     "params": {"group_by": "account", "window": "daily", "max_count": 2}},
]
SEVERITY = {"big": "high", "band": "low", "vel": "medium"}


def messy_rows(rng: random.Random) -> list[dict]:
    rows = []
    for i in range(ROWS):
        amount = round(rng.uniform(10, 12000), 2)
        shape = rng.random()
        written = (f"${amount:,.2f}" if shape < 0.3 else f"{amount:,.2f} USD" if shape < 0.4 else
                   "n/a" if shape < 0.43 else f"{amount:.2f}")
        day = rng.randint(1, 20)
        when = "15/01/2024" if rng.random() < 0.03 else f"2024-01-{day:02d}T{rng.randint(0, 23):02d}:00:00Z"
        note = "two\nlines" if rng.random() < 0.05 else "ok"
        rows.append({"Txn ID": f"T{i}", "Account ID": f"ACC-{rng.randint(1, 40):03d}", "Amount": written,
                     "Date": when, "Note": note})
    return rows


def as_csv(rows: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return b"\xef\xbb\xbf" + out.getvalue().encode()  # a BOM, as Excel writes it


def amount_of(text: str) -> float | None:
    """What an amount reads as, by this test's own reading: symbol or code off, thousands commas off."""
    text = text.removeprefix("$").removesuffix(" USD").replace(",", "")
    try:
        return float(text)
    except ValueError:
        return None


def time_of(text: str) -> datetime | None:
    """ISO 8601, or day-first as the export's 15/01/2024 (a day over 12 says which)."""
    for parse in (lambda t: datetime.fromisoformat(t.replace("Z", "+00:00")),
                  lambda t: datetime.strptime(t, "%d/%m/%Y")):
        try:
            return parse(text)
        except ValueError:
            pass
    return None


def expected(rows: list[dict]) -> tuple[Counter, dict[str, list[int]]]:
    """(violations per rule, record indexes each rule could not judge)."""
    found, unread = Counter(), {"big": [], "band": [], "vel": []}
    per_day = Counter()
    for i, row in enumerate(rows):
        amount, when = amount_of(row["Amount"]), time_of(row["Date"])
        if amount is None:
            unread["big"].append(i)
            unread["band"].append(i)
        else:
            found["big"] += amount > 9000
            found["band"] += amount > 9999
        if amount is None or when is None:
            unread["vel"].append(i)
        else:
            per_day[(row["Account ID"], when.date())] += 1
    found["vel"] = sum(1 for n in per_day.values() if n > 2)
    return found, unread


def test_a_messy_export_is_scanned_cell_by_cell_with_what_could_not_be_judged_counted(api):
    rows = messy_rows(random.Random(2026))
    want, unread = expected(rows)
    assert all(unread.values()) and want["vel"]  # the fixture has every kind of mess it is meant to
    up = upload(api, as_csv(rows))
    assert up["record_count"] == ROWS and up["columns"] == ["Txn ID", "Account ID", "Amount", "Date", "Note"]
    mapping = confirm(api, up["upload_id"], {"amount": "Amount", "account": "Account ID", "timestamp": "Date",
                                             "transaction_id": "Txn ID"})
    assert {w["path"][1] for w in mapping["warnings"]} == {"amount"}  # n/a, said before any scan
    assert up["dialect"]["dates"] == "DMY"  # 15/01/2024 among ISO times: read day-first, stored as ISO
    scan_id = run(api, policy(api, RULES, "Messy")["id"], up["upload_id"], mapping["mapping_id"])
    scan = wait_settled(api, scan_id)
    assert scan["status"] == "completed", scan
    violations = all_violations(api, scan_id)
    assert Counter(v["rule_id"] for v in violations) == +want
    assert scan["violation_count"] == sum(want.values())
    assert {u["rule_id"]: u["count"] for u in scan["unevaluated"]} == {r: len(ix) for r, ix in unread.items()}
    for u in scan["unevaluated"]:
        assert u["sample_record_indexes"] == unread[u["rule_id"]][:5]
    assert scan["compliance_score"] == data.score(ROWS, Counter({SEVERITY[r]: n for r, n in want.items()}))
    # the record behind each large amount, with its amount as the export wrote it
    for v in violations:
        if v["rule_id"] == "big":
            row = rows[v["record_index"]]
            assert v["record"]["transaction_id"] == row["Txn ID"] and v["record"]["amount"] == row["Amount"]


def test_a_european_export_with_a_footer_and_repeated_headers_is_read_as_written(api):
    """; between fields, decimal commas, a TOTAL line, two 'Amount' columns: said by the upload's answer."""
    rng = random.Random(7)
    amounts = [round(rng.uniform(1, 20000), 2) for _ in range(400)]
    lines = ["Txn ID;Account ID;Amount;Date;Amount"]
    for i, amount in enumerate(amounts):
        euro = f"{amount:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")  # 12.345,67
        lines.append(f"T{i};ACC-{i % 9:03d};{euro};2024-02-{1 + i % 28:02d};{i}")
    lines.append(f"TOTAL;;{sum(amounts):.2f};;")
    r = api.post("/api/upload", files={"file": ("eu.csv", ("\n".join(lines) + "\n").encode(), "text/csv")},
                 data={"skip_footer": "1"})
    assert r.status_code == 201, r.text
    up = r.json()
    assert up["record_count"] == 400 and up["columns"] == ["Txn ID", "Account ID", "Amount", "Date", "Amount.1"]
    assert up["dialect"] == {"delimiter": ";", "decimal": ",", "encoding": "utf-8", "skip_footer": 1,
                             "dates": None}  # its dates are ISO already
    assert up["renamed_columns"] == {"Amount.1": "Amount"}
    mapping = confirm(api, up["upload_id"], {"amount": "Amount", "account": "Account ID", "timestamp": "Date"})
    assert mapping["warnings"] == []  # the amounts read as numbers now
    scan_id = run(api, policy(api, RULES[:1], "EU")["id"], up["upload_id"], mapping["mapping_id"])
    scan = wait_settled(api, scan_id)
    assert scan["status"] == "completed" and scan["unevaluated"] == []
    assert scan["violation_count"] == sum(a > 9000 for a in amounts)  # the TOTAL line is no transaction
    bad = api.post("/api/upload", files={"file": ("eu.csv", b"a;b\n1;2\n", "text/csv")},
                   data={"delimiter": "#", "encoding": "klingon"})
    assert bad.status_code == 400 and {tuple(d["path"]) for d in bad.json()["details"]} == {("delimiter",),
                                                                                           ("encoding",)}


def test_a_datastore_says_how_its_csv_files_are_written(system):
    """A comma file with quoted decimal-comma amounts and dates whose order nothing in the file tells:
    registered with its dialect, its monitors read 1.234,5 as 1234.5 and 03/04/2024 as a date; the same
    folder registered without one fails the amounts monitor visibly, never passes it."""
    folder = system.datastore_root / "eu-exports"
    folder.mkdir()
    (folder / "ledger.csv").write_text('id,Amount,Date\n1,"1.234,5",03/04/2024\n2,"12,5",04/03/2024\n'
                                       '3,"999,99",01/02/2024\n')
    with in_workspace(system, "Dialects") as ws:
        api = ws.admin
        said = api.post("/api/datastores", json={"name": "EU", "type": "local_dir", "path": folder.name,
                                                 "dialect": {"decimal": ",", "dates": "DMY"}})
        assert said.status_code == 201, said.text
        assert said.json()["dialect"] == {"decimal": ",", "dates": "DMY"}
        sniffed = api.post("/api/datastores", json={"name": "EU sniffed", "type": "local_dir", "path": folder.name})
        for bad in ({"dialect": {"decimal": ";"}}, {"dialect": {"delimiter": ","}, "type": "sqlite"},
                    {"dialect": {"decimals": ","}}):
            r = api.post("/api/datastores", json={"name": "x", "type": "local_dir", "path": folder.name, **bad})
            assert r.status_code == 400 and r.json()["details"][0]["path"][0] == "dialect", r.text
        monitors = [{"name": "Amounts", "type": "value_range", "params": {"column": "Amount", "min": 0, "max": 1000}},
                    {"name": "Dates", "type": "schema", "params": {"columns": {"Date": "date"}}}]
        assets = {}
        for store in (said.json(), sniffed.json()):
            (asset,) = sync(api, store["id"])
            assets[store["name"]] = asset["id"]
            for monitor in monitors:
                assert api.post(f"/api/assets/{asset['id']}/monitors", json=monitor).status_code == 201
        execution = api.post("/api/scan/run").json()["data"]["executionId"]
        wait_finished(api, execution)
        board = {a["assetId"]: a for a in api.get("/api/assets/scan-status").json()["data"]}
        runs = {name: {m["monitorName"]: m for m in board[str(aid)]["lastRun"]["monitors"]}
                for name, aid in assets.items()}
        anomalies = api.get(f"/api/scan/{execution}/violations").json()["items"]
    assert runs["EU"]["Amounts"]["stage"] == runs["EU"]["Dates"]["stage"] == "completed"
    amounts = [(v["observed"]["outside"], v["observed"]["sample_rows"]) for v in anomalies
               if v["rule_name"] == "Amounts"]
    assert amounts == [(1, [1])]  # 1234.5 > 1000, on row 1: the EU store's (the sniffed one's failed)
    # 03/04/2024 is a date for the store that says DMY; the sniffed store cannot tell, so its schema differs
    dates = [v["observed"]["mismatched"] for v in anomalies if v["rule_name"] == "Dates"]
    assert dates == [[{"column": "Date", "expected": "date", "actual": "string"}]]
    # without the dialect, "1.234,5" is no number a monitor can judge: it says so, it does not pass
    assert runs["EU sniffed"]["Amounts"]["stage"] == "failed" and runs["EU sniffed"]["Amounts"]["error"]
