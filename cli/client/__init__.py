"""The client commands: `scanledger scan run|status|list|follow` and `scanledger apply -f FILE`.

They talk to a running API over HTTP only (httpx), at SCANLEDGER_URL with SCANLEDGER_TOKEN, and
never import the processes' code: what they show is what any HTTP client would see.

Exit codes (also in `scanledger scan --help` and the README):
    0  the scan completed within the thresholds (or the command did its job)
    1  the scan completed with violations or findings above --fail-on-violations / --fail-on-severity
    2  usage or API error: the API unreachable, a refused token, a 4xx/5xx answer, a bad file
    3  the scan failed, partially failed or was aborted/cancelled
"""
from __future__ import annotations

from cli.client.api import ClientError
from cli.client.apply import cmd_apply
from cli.client.codes import ENVIRONMENT, EXIT_CODES, SEVERITIES
from cli.client.scan import cmd_scan_follow, cmd_scan_list, cmd_scan_run, cmd_scan_status

__all__ = ["ENVIRONMENT", "EXIT_CODES", "SEVERITIES", "ClientError", "cmd_apply", "cmd_scan_follow", "cmd_scan_list",
           "cmd_scan_run", "cmd_scan_status"]
