"""Audit from the log itself: a scan's ledger as the log holds it (and, to come, its verification)."""
