"""GET /, the live page, in a real browser (Debian's chromium, headless, driven by selenium) over the real
system: it asks for a token, lists the workspace's runs, follows a run in flight over its event stream
until it ends, and a compliance scan started after it opened until it shows it completed, with each
rule's violations as the API counts them and as the data says; then a screenshot. The page alone holds
nothing of a workspace. Waits poll the page until it shows what is expected, with a generous deadline: no
timing is asserted."""
from __future__ import annotations

import os
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from harness import data
from tests.e2e import helpers
from tests.e2e.monitor_fixtures import in_workspace

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"  # Debian's chromium, chromium-driver
DEADLINE_S = 600  # how long the page may take to show a state: a bound for a failure, not a measure
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def ws(system):
    lake = system.datastore_root / f"live-{uuid.uuid4().hex[:8]}"
    lake.mkdir()
    (lake / "notes.txt").write_text("call back jane.doe@example.com\n")
    with in_workspace(system, "Live page") as ws:
        ws.connector = helpers.ok(ws.admin.post("/api/v1/connectors", json={
            "name": "Notes", "type": "local_dir", "config": {"path": lake.name}}), 201)["id"]
        yield ws


@pytest.fixture()
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


# The page redraws its tables as events arrive, so it is read in one script at a time (the page's own
# JavaScript cannot run in between), never through element handles that a redraw leaves stale.
SHOWN = "const e = document.querySelector(arguments[0]); return e !== null && e.offsetParent !== null;"
TEXT = "const e = document.querySelector(arguments[0]); return e === null ? null : e.textContent;"
RESOURCES = "return performance.getEntriesByType('resource').map(e => e.name);"
BREAKDOWN = """return [...document.querySelectorAll('#breakdown tbody tr')]
                 .map(tr => [tr.dataset.key, tr.querySelector('.count').textContent]);"""


def until(driver, probe):
    """probe(driver)'s first truthy answer, polled while the page works."""
    return WebDriverWait(driver, DEADLINE_S, poll_frequency=0.2,
                         ignored_exceptions=(StaleElementReferenceException,)).until(probe)


def shown(driver, css: str) -> None:
    until(driver, lambda d: d.execute_script(SHOWN, css))


def text(driver, css: str) -> str | None:
    return driver.execute_script(TEXT, css)


def click(driver, css: str) -> None:
    """A real click on the element, found again if a redraw replaced it meanwhile."""
    until(driver, lambda d: d.find_element(By.CSS_SELECTOR, css).click() or True)


def artifacts(tmp_path: Path) -> Path:
    where = os.environ.get("SCANLEDGER_TEST_ARTIFACTS")
    if not where:
        return tmp_path
    Path(where).mkdir(parents=True, exist_ok=True)
    return Path(where)


def test_the_page_alone_holds_no_workspace_data(system, ws):
    page = httpx.get(f"{system.url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset in ("/live/live.js", "/live/live.css"):
        r = httpx.get(f"{system.url}{asset}")
        assert r.status_code == 200 and r.content, asset
        assert b"https://" not in r.content and b"http://" not in r.content  # no CDN: it works offline
    assert "https://" not in page.text and "/live/live.js" in page.text
    assert ws.id not in page.text and "Live page" not in page.text


def test_the_page_follows_a_run_in_flight_over_its_event_stream(system, ws, browser):
    """A BYOC scan waits for workers nobody starts: the page shows it in flight until it is cancelled."""
    browser.get(f"{system.url}/")
    shown(browser, "#login #token")
    browser.find_element(By.CSS_SELECTOR, "#token").send_keys(ws.viewer.headers["authorization"].split()[1])
    click(browser, "#login button[type=submit]")
    scan_id = helpers.ok(ws.admin.post("/api/v1/scans/parallel", json={
        "connectors": [ws.connector], "type": "full", "options": {"execution": "byoc"}}), 201)["scan_id"]
    run_id = next(item["id"] for item in ws.admin.get("/api/operations").json()["items"]
                  if ws.admin.get(f"/api/operations/{item['id']}").json()["scan_id"] == scan_id)
    status = f'#runs tr[data-run="{run_id}"] .status'
    until(browser, lambda d: text(d, status) in ("queued", "running"))
    helpers.ok(ws.admin.post(f"/api/v1/scans/{scan_id}/cancel"))
    until(browser, lambda d: text(d, status) == "aborted")
    # the page read the run's events to their end (a resource is listed once its answer is complete)
    events = f"{system.url}/api/operations/{run_id}/events"
    until(browser, lambda d: events in d.execute_script(RESOURCES))


def test_the_page_follows_a_compliance_scan_to_its_counts_per_rule(system, ws, browser, tmp_path):
    token = ws.viewer.headers["authorization"].removeprefix("Bearer ")
    browser.get(f"{system.url}/")
    shown(browser, "#login #token")
    browser.find_element(By.CSS_SELECTOR, "#token").send_keys(token)
    click(browser, "#login button[type=submit]")
    shown(browser, "#runs-section")

    rows = data.transactions(4000, seed=2025)
    up = helpers.upload(ws.admin, data.to_csv(rows))
    mapping = helpers.confirm(ws.admin, up["upload_id"])
    scan_id = helpers.run(ws.admin, helpers.policy(ws.admin)["id"], up["upload_id"], mapping["mapping_id"])
    run_id = next(item["id"] for item in ws.admin.get("/api/operations").json()["items"]
                  if ws.admin.get(f"/api/operations/{item['id']}").json()["scan_id"] == scan_id)

    row = f'#runs tr[data-run="{run_id}"]'
    until(browser, lambda d: text(d, f"{row} .status") == "success")
    click(browser, row)
    shown(browser, f'#detail[data-run="{run_id}"][data-shown="success"] #breakdown tbody tr')

    on_page = {key: int(count) for key, count in browser.execute_script(BREAKDOWN)}
    by_api = Counter(v["rule_id"] for v in helpers.all_violations(ws.admin, scan_id))
    by_data = {rule_id: len(found) for rule_id, found in data.expected(rows).items()}
    assert on_page == {rule["id"]: by_api[rule["id"]] for rule in data.RULES} == by_data
    assert sum(on_page.values()) == helpers.wait_settled(ws.admin, scan_id)["violation_count"] > 0
    assert text(browser, "#detail-status") == "success"
    assert int(text(browser, f"{row} .anomalies")) == sum(on_page.values())

    # the token travelled in headers only: no URL the page asked for carries it
    urls = browser.execute_script(RESOURCES)
    assert urls and not [u for u in urls if token in u]

    shot = artifacts(tmp_path) / "live-page.png"
    assert browser.save_screenshot(str(shot))
    print(f"screenshot: {shot}")
    content = shot.read_bytes()
    assert content.startswith(PNG) and len(content) > 20_000
