"""`scanledger apply -f FILE`: policies and monitors as code, created or updated by name; applying
the same files twice changes nothing."""
from __future__ import annotations

import sys
from pathlib import Path

from cli.client.api import Api, ClientError
from cli.client.codes import EXIT_OK

FIELDS = {"policy": {"kind", "name", "description", "rules"},
          "monitor": {"kind", "asset", "name", "type", "severity", "enabled", "params"}}


def _load(paths: list[str]) -> list[dict]:
    import yaml

    docs: list[dict] = []
    for path in paths:
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text()
            loaded = [d for d in yaml.safe_load_all(text) if d is not None]
        except OSError as exc:
            raise ClientError(f"{path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ClientError(f"{path}: not YAML: {' '.join(str(exc).split())}") from None
        for doc in loaded:
            for item in doc if isinstance(doc, list) else [doc]:
                if not isinstance(item, dict) or not item.get("name"):
                    raise ClientError(f"{path}: each document is a policy or a monitor with a name")
                kind = item.get("kind", "policy")
                if kind not in ("policy", "monitor"):
                    raise ClientError(f"{path}: kind {kind!r}: policy or monitor")
                if kind == "monitor" and "asset" not in item:
                    raise ClientError(f"{path}: monitor {item['name']!r} needs an asset (its id or name)")
                unknown = sorted(set(item) - FIELDS[kind])
                if unknown:
                    raise ClientError(f"{path}: {kind} {item['name']!r}: unknown field(s) {', '.join(unknown)}"
                                      f" (a {kind} has {', '.join(sorted(FIELDS[kind]))})")
                docs.append({**item, "kind": kind})
    return docs


def _covers(have, want) -> bool:
    """Whether the API's `have` already says all that `want` says (the API adds defaults and rule ids)."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(k in have and _covers(have[k], v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(have) == len(want) and all(map(_covers, have, want))
    return have == want


def _apply_policy(api: Api, doc: dict, existing: dict[str, dict]) -> tuple[str, bool]:
    body = {"name": doc["name"], "rules": doc.get("rules") or []}
    if "description" in doc:
        body["description"] = doc["description"]
    now = existing.get(doc["name"])
    if now is None:
        made = api.json("POST", "/api/policies", json=body)
        return f"policy {doc['name']!r}: created ({made['id']}, {len(made['rules'])} rules)", True
    if _covers(now, body):
        return f"policy {doc['name']!r}: unchanged ({now['id']})", False
    api.json("PUT", f"/api/policies/{now['id']}", json=body)
    return f"policy {doc['name']!r}: updated ({now['id']}, {len(body['rules'])} rules)", True


def _asset_id(api: Api, asset, assets: list[dict] | None) -> tuple[int, list[dict]]:
    if isinstance(asset, int):
        return asset, assets or []
    if assets is None:
        assets = api.json("GET", "/api/assets")["items"]
    named = [a for a in assets if a.get("name") == asset]
    if len(named) != 1:
        raise ClientError(f"asset {asset!r}: {'no asset' if not named else 'several assets'} of that name "
                          "(GET /api/assets lists them; give its id)")
    return named[0]["id"], assets


def _apply_monitor(api: Api, doc: dict, assets: list[dict] | None) -> tuple[str, bool, list[dict] | None]:
    asset_id, assets = _asset_id(api, doc["asset"], assets)
    body = {k: doc[k] for k in ("name", "type", "severity", "enabled", "params") if k in doc}
    monitors = api.json("GET", f"/api/assets/{asset_id}/monitors")["items"]
    now = next((m for m in monitors if m["name"] == doc["name"]), None)
    what = f"monitor {doc['name']!r} of asset {doc['asset']!r}"
    if now is None:
        made = api.json("POST", f"/api/assets/{asset_id}/monitors", json=body)
        return f"{what}: created ({made['id']})", True, assets
    if _covers(now, body):
        return f"{what}: unchanged ({now['id']})", False, assets
    api.json("PATCH", f"/api/assets/{asset_id}/monitors/{now['id']}", json=body)
    return f"{what}: updated ({now['id']})", True, assets


def cmd_apply(args) -> int:
    """Create what is not there, update what differs (by name), leave the rest: applying twice changes nothing."""
    docs = _load(args.file)
    names = [(d["kind"], str(d.get("asset")), d["name"]) for d in docs]
    twice = {n for n in names if names.count(n) > 1}
    if twice:
        raise ClientError(f"named twice: {', '.join(sorted(f'{k} {n!r}' for k, _, n in twice))}")
    changed = 0
    with Api() as api:
        policies = {p["name"]: p for p in api.json("GET", "/api/policies")["items"]} if any(
            d["kind"] == "policy" for d in docs) else {}
        assets = None
        for doc in docs:
            if doc["kind"] == "policy":
                line, did = _apply_policy(api, doc, policies)
            else:
                line, did, assets = _apply_monitor(api, doc, assets)
            changed += did
            print(line, flush=True)
    print(f"{changed} changed, {len(docs) - changed} unchanged" if changed else
          f"nothing to change: {len(docs)} up to date")
    return EXIT_OK
