"""The API's route table: the OpenAPI walk through Mounts, the id64 convertor, per-thread connections."""
from __future__ import annotations

import re
import threading

from starlette.routing import Mount, Route

from api.app import ROUTERS
from api.web import openapi
from api.web.openapi import flat_routes, openapi_document
from api.web.params import Int64Convertor
from services.adapters.db import ConnectionPerThread, transaction


async def _endpoint(request):
    """An endpoint."""


def test_mounted_routes_are_listed_with_their_full_path_and_body():
    openapi.BODIES[("post", "/x/items/{itemId}")] = openapi.BODIES.get(("post", "/api/policies"))
    routes = [Route("/top", _endpoint),
              Mount("/x", routes=[Route("/items/{itemId:id64}", _endpoint, methods=["POST"])])]
    assert [path for path, _ in flat_routes(routes)] == ["/top", "/x/items/{itemId:id64}"]
    paths = openapi_document(routes)["paths"]
    assert sorted(paths) == ["/top", "/x/items/{itemId}"]
    assert paths["/x/items/{itemId}"]["post"]["parameters"][0]["name"] == "itemId"
    assert "requestBody" in paths["/x/items/{itemId}"]["post"]
    del openapi.BODIES[("post", "/x/items/{itemId}")]


def test_no_two_routers_list_the_same_route():
    seen = [(m, path) for router in ROUTERS for path, route in flat_routes(router.routes) for m in route.methods]
    assert len(seen) == len(set(seen))


def test_id64_takes_ascii_digits_only():
    regex = Int64Convertor.regex
    assert re.fullmatch(regex, "0") and re.fullmatch(regex, "9" * 19)
    for text in ("scan-status", "²", "٣", "-1", "9" * 20, ""):
        assert not re.fullmatch(regex, text), text


def test_each_thread_has_its_own_connection_and_a_transaction_stays_on_it(tmp_path):
    db = ConnectionPerThread(f"sqlite:///{tmp_path / 'x.db'}")
    db.execute("CREATE TABLE t (n INTEGER)")
    seen = []

    def work():
        with transaction(db):
            db.execute("INSERT INTO t VALUES (1)")
            seen.append(db.connection)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in seen}) == 4 and db.connection not in seen
    assert db.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 4
    db.close()
