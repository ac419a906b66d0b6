"""The client commands' exit codes and the help texts that list them and the environment."""
from __future__ import annotations

EXIT_OK, EXIT_THRESHOLD, EXIT_ERROR, EXIT_FAILED = 0, 1, 2, 3
EXIT_CODES = """exit codes:
  0  completed within the thresholds
  1  completed, but violations/findings above --fail-on-violations or of --fail-on-severity or worse
  2  usage or API error (API unreachable: SCANLEDGER_URL; token refused: SCANLEDGER_TOKEN; a 4xx/5xx)
  3  the scan failed, partially failed, or was aborted/cancelled"""
ENVIRONMENT = """environment:
  SCANLEDGER_URL    the API (default http://127.0.0.1:$SCANLEDGER_PORT, port 8000)
  SCANLEDGER_TOKEN  a bearer token (default: the admin token `scanledger up` keeps in its data dir)"""
SEVERITIES = ("low", "medium", "high", "critical")
POLL_S = 0.5
