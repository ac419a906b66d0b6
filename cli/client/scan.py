"""`scanledger scan run|status|list|follow`."""
from __future__ import annotations

import sys

from cli.client.api import Api, ClientError
from cli.client.codes import EXIT_OK
from cli.client.progress import Thresholds, follow, read_scan


def _thresholds(args) -> Thresholds:
    if args.fail_on_violations is not None and args.fail_on_violations < 0:
        raise ClientError("--fail-on-violations: give 0 or more")
    return Thresholds(args.fail_on_violations, args.fail_on_severity)


def cmd_scan_run(args) -> int:
    thresholds = _thresholds(args)
    compliance = [args.policy, args.upload, args.mapping]
    kinds = [any(compliance), args.monitors, bool(args.connector)]
    if sum(map(bool, kinds)) != 1:
        raise ClientError("say which scan: --policy, --upload and --mapping (compliance), --monitors "
                          "(every enabled monitor of the workspace) or --connector ID (sensitive data)")
    if args.connector and args.fail_on_severity:
        raise ClientError("--fail-on-severity: a sensitive-data scan's findings have no severity; "
                          "use --fail-on-violations N")
    with Api() as api:
        if any(compliance):
            if not all(compliance):
                raise ClientError("a compliance scan needs --policy, --upload and --mapping")
            body = {"policy_id": args.policy, "upload_id": args.upload, "mapping_id": args.mapping}
            if args.audit_name:
                body["audit_name"] = args.audit_name
            # answers at once: the progress is ours to show
            scan_id, kind = api.json("POST", "/api/scan/run", json=body,
                                     headers={"Prefer": "respond-async"})["scan_id"], "compliance"
        elif args.monitors:
            scan_id, kind = api.json("POST", "/api/scan/run")["data"]["executionId"], "monitor"
        else:
            body = {"connectors": args.connector, "type": "incremental" if args.incremental else "full"}
            scan_id, kind = api.json("POST", "/api/v1/scans/parallel", json=body)["data"]["scan_id"], "sensitive"
        print(f"started {kind} scan {scan_id}", file=sys.stderr if args.wait else sys.stdout, flush=True)
        if not args.wait:
            return EXIT_OK
        return follow(api, scan_id, kind, thresholds)


def cmd_scan_follow(args) -> int:
    with Api() as api:
        return follow(api, args.scan_id, None, _thresholds(args))


def cmd_scan_status(args) -> int:
    import orjson

    with Api() as api:
        seen = read_scan(api, args.scan_id)
    if args.json:
        print(orjson.dumps(seen.raw, option=orjson.OPT_INDENT_2).decode())
    else:
        print(seen.line() + (f" ({seen.message})" if seen.message else ""))
    return EXIT_OK


def cmd_scan_list(args) -> int:
    import orjson

    params = {"operation_type": "scan", "sort_created": "desc", "size": args.limit}
    if args.result:
        params["result"] = args.result
    with Api() as api:
        items = api.json("GET", "/api/operations", params=params)["items"]
    if args.json:
        for item in items:
            print(orjson.dumps(item).decode())
        return EXIT_OK
    print(f"{'run':>6}  {'result':<8}  {'created':<24}  {'records':>9}  {'found':>7}  message")
    for item in items:
        st = item.get("status") or {}
        print(f"{item['id']:>6}  {item['result']:<8}  {item['created'] or '':<24}  {st.get('records_processed', 0):>9}"
              f"  {st.get('anomalies_identified', 0):>7}  {item.get('message') or ''}")
    return EXIT_OK
