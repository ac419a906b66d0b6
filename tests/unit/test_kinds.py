"""The scan kinds' registry: one entry per kind the contracts name, and a pure half."""
import subprocess
import sys
import typing

from services.domain import contracts as c
from services.domain.kinds import KINDS, asset_run_kinds, delta_kinds, kind_of, kinds_of_operation_type


def test_the_registry_has_exactly_the_kinds_the_contracts_name():
    assert set(c.SCAN_REQUESTS) == set(KINDS) == set(typing.get_args(c.WorkUnit.model_fields["kind"].annotation))
    for name, model in c.SCAN_REQUESTS.items():
        assert typing.get_args(model.model_fields["kind"].annotation) == (name,)
    no_kind = c.WorkUnit.model_fields["kind"].default
    assert kind_of({}).name == no_kind == c.ComplianceScanRequest.model_fields["kind"].default


def test_what_each_kind_checks_and_how_the_activity_list_names_it():
    monitor = {"id": "m1"}
    targets = {"targets": [{"monitors": [monitor]}, {"monitors": []}]}
    assert KINDS["compliance"].checks({"policy": {"rules": [{"id": "r"}]}}) == [{"id": "r"}]
    assert KINDS["monitor"].checks(targets) == [monitor]
    assert KINDS["catalog"].checks({"targets": [{"monitors": []}]}) == []
    assert kinds_of_operation_type("scan") == ("compliance", "monitor", "sensitive")  # seed 003 has no other type
    assert kinds_of_operation_type("catalog") == ("catalog",)
    assert kinds_of_operation_type("export") == ()
    assert [k.name for k in KINDS.values() if not k.resumable] == ["catalog"]
    assert asset_run_kinds() == ("monitor",) and delta_kinds() == ("compliance",)
    # a sensitive-data scan's id reads as seed 004's ("scan-par-001"); the others' are bare uuids
    assert {k.name: k.scan_id_prefix for k in KINDS.values()} == {
        "compliance": "", "monitor": "", "catalog": "", "sensitive": "scan-"}


def test_the_pure_half_imports_no_adapter():
    io = ("services.runners", "services.runners.compliance", "services.runners.targets", "services.adapters.kafka",
          "services.adapters.blobstore", "services.adapters.db", "sqlite3", "confluent_kafka")
    code = ("import sys, services.domain.kinds, services.domain.lifecycle; "
            f"print(sorted(m for m in sys.modules if m in {io!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_kind_has_its_io_half():
    from services.runners import IO
    assert set(IO) == set(KINDS)
