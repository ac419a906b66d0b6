"""The compliance score: 0-100, severity-weighted, 100 with no open violations.

    score = 100 × N / (N + Σ weight(severity) over open violations),   N = max(records, 1)

Each open violation adds its weight to the penalty, so adding a violation can only lower the
score and resolving or dismissing one can only raise it; the score never leaves 0-100 and
does not depend on how many rules a policy has. Rounded to two decimals.
"""
from __future__ import annotations

WEIGHTS: dict[str, int] = {"low": 1, "medium": 2, "high": 5, "critical": 10}


def compliance_score(record_count: int, open_by_severity: dict[str, int]) -> float:
    penalty = sum(WEIGHTS[sev] * max(n, 0) for sev, n in open_by_severity.items())
    records = max(record_count, 1)
    return round(100.0 * records / (records + penalty), 2)
