"""Generated transactions and their answers, computed here in plain Python, independently of
the rule engine, from the documented semantics."""
from __future__ import annotations

import csv
import io
import math
import random
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

MAPPING = {"amount": "Amount", "account": "Account ID", "timestamp": "Date"}
WEIGHTS = {"low": 1, "medium": 2, "high": 5, "critical": 10}

RULES = [
    {"id": "big", "name": "Large amount", "type": "threshold", "severity": "high",
     "params": {"field": "amount", "op": "gt", "value": 9500}},
    {"id": "acct", "name": "Account present", "type": "required", "severity": "critical",
     "params": {"field": "account"}},
    {"id": "ccy", "name": "Currency allowed", "type": "allowed_values", "severity": "low",
     "params": {"field": "Currency", "values": ["USD", "EUR"]}},
    {"id": "fmt", "name": "Account format", "type": "pattern", "severity": "medium",
     "params": {"field": "account", "regex": r"^ACC-\d{3}$"}},
    {"id": "dup", "name": "Duplicate transaction", "type": "duplicate", "severity": "high",
     "params": {"fields": ["Txn ID"]}},
    {"id": "vel", "name": "Daily velocity", "type": "velocity", "severity": "medium",
     "params": {"group_by": "account", "window": "daily", "max_count": 3}},
    {"id": "struct", "name": "Structuring", "type": "structuring", "severity": "critical",
     "params": {"group_by": "account", "lower": 9000, "upper": 10000, "min_count": 2, "window": "weekly"}},
]
SEVERITY = {r["id"]: r["severity"] for r in RULES}


def transactions(n: int, seed: int, accounts: int = 40) -> list[dict]:
    rnd = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(n):
        account = f"ACC-{rnd.randrange(accounts):03d}"
        if rnd.random() < 0.01:
            account = f"acc-{rnd.randrange(10)}"  # breaks the format rule
        if i % 331 == 7:
            account = None  # missing: only the required rule may flag it
        roll = rnd.random()
        amount = round(rnd.uniform(9000, 9999), 2) if roll < 0.04 else round(rnd.uniform(1, 12000), 2) if roll < 0.1 \
            else round(rnd.uniform(1, 3000), 2)
        moment = start + timedelta(minutes=rnd.randrange(60 * 24 * 60))
        rows.append({
            "Txn ID": f"T{rnd.randrange(n * 50):07d}" if rnd.random() > 0.01 or not rows else rows[-1]["Txn ID"],
            "Account ID": account,
            "Amount": amount,
            "Currency": rnd.choices(["USD", "EUR", "GBP"], [60, 35, 5])[0],
            "Date": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Note": f"contact {account.lower() if account else 'x'}@example.com" if i % 97 == 0 else "ok",
        })
    return rows


def to_csv(rows: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return out.getvalue().encode()


def _when(row) -> datetime:
    return datetime.strptime(row["Date"], "%Y-%m-%dT%H:%M:%SZ")


def expected(rows: list[dict]) -> dict[str, list[str]]:
    """Signature of every violation, per rule: one entry per violation. rule_id:account (seed 001), and
    for a record without an account rule_id:#<its record index> (MAPPING maps no transaction id)."""
    out: dict[str, list[str]] = {r["id"]: [] for r in RULES}
    seen = set()
    for number, row in enumerate(rows):  # record_index: 0-based
        acct = row["Account ID"]
        who = acct if acct is not None else f"#{number}"
        if row["Amount"] > 9500:
            out["big"].append(f"big:{who}")
        if acct is None:
            out["acct"].append(f"acct:{who}")
        if row["Currency"] not in ("USD", "EUR"):
            out["ccy"].append(f"ccy:{who}")
        if acct is not None and not re.search(r"^ACC-\d{3}$", acct):
            out["fmt"].append(f"fmt:{acct}")
        if row["Txn ID"] in seen:
            out["dup"].append(f"dup:{who}")
        seen.add(row["Txn ID"])
    daily = Counter((r["Account ID"], _when(r).date()) for r in rows if r["Account ID"] is not None)
    out["vel"] = [f"vel:{acct}" for (acct, _), n in sorted(daily.items()) if n > 3]
    weekly = Counter((r["Account ID"], _when(r).isocalendar()[:2]) for r in rows
                     if r["Account ID"] is not None and 9000 <= r["Amount"] < 10000)
    out["struct"] = [f"struct:{acct}" for (acct, _), n in sorted(weekly.items()) if n >= 2]
    return out


def score(records: int, open_by_severity: Counter) -> float:
    penalty = sum(WEIGHTS[s] * n for s, n in open_by_severity.items())
    n = max(records, 1)
    return round(100 * n / (n + penalty), 2)


def by_severity(found: dict[str, list[str]]) -> Counter:
    return Counter({SEVERITY[rule]: 0 for rule in found}) + Counter(
        {sev: sum(len(v) for r, v in found.items() if SEVERITY[r] == sev) for sev in set(SEVERITY.values())})


def signatures(found: dict[str, list[str]]) -> set[str]:
    return {s for sigs in found.values() for s in sigs}


def ceil_pages(total: int, size: int) -> int:
    return math.ceil(total / size) if total else 0
