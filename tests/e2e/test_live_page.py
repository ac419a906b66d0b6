"""GET /, the live page, in a real browser (Debian's chromium, headless, driven by selenium) over the real
system: it asks for a token, lists the workspace's runs, follows a compliance scan started after it
opened until it shows it completed, with each rule's violations as the API counts them and as the
data says; then a screenshot. The page alone holds nothing of a workspace. Waits poll the page until
it shows what is expected, with a generous deadline: no timing is asserted."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
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
    with in_workspace(system, "Live page") as ws:
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


def shown(driver, css: str):
    """The element once the page shows it (it exists and is displayed)."""
    def found(d):
        elements = d.find_elements(By.CSS_SELECTOR, css)
        return elements[0] if elements and elements[0].is_displayed() else False
    return WebDriverWait(driver, DEADLINE_S, poll_frequency=0.2).until(found)


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


def test_the_page_follows_a_compliance_scan_to_its_counts_per_rule(system, ws, browser, tmp_path):
    token = ws.viewer.headers["authorization"].removeprefix("Bearer ")
    browser.get(f"{system.url}/")
    shown(browser, "#login #token").send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
    shown(browser, "#runs-section")

    rows = data.transactions(4000, seed=2025)
    up = helpers.upload(ws.admin, data.to_csv(rows))
    mapping = helpers.confirm(ws.admin, up["upload_id"])
    scan_id = helpers.run(ws.admin, helpers.policy(ws.admin)["id"], up["upload_id"], mapping["mapping_id"])
    run_id = next(item["id"] for item in ws.admin.get("/api/operations").json()["items"]
                  if ws.admin.get(f"/api/operations/{item['id']}").json()["scan_id"] == scan_id)

    shown(browser, f'#runs tr[data-run="{run_id}"]')
    WebDriverWait(browser, DEADLINE_S, poll_frequency=0.2).until(
        lambda d: d.find_element(By.CSS_SELECTOR, f'#runs tr[data-run="{run_id}"] .status').text == "success")
    row = browser.find_element(By.CSS_SELECTOR, f'#runs tr[data-run="{run_id}"]')
    row.click()
    shown(browser, f'#detail[data-run="{run_id}"][data-shown="success"] #breakdown tbody tr')

    on_page = {tr.get_attribute("data-key"): int(tr.find_element(By.CSS_SELECTOR, ".count").text)
               for tr in browser.find_elements(By.CSS_SELECTOR, "#breakdown tbody tr")}
    by_api = Counter(v["rule_id"] for v in helpers.all_violations(ws.admin, scan_id))
    by_data = {rule_id: len(found) for rule_id, found in data.expected(rows).items()}
    assert on_page == {rule["id"]: by_api[rule["id"]] for rule in data.RULES} == by_data
    assert sum(on_page.values()) == helpers.wait_settled(ws.admin, scan_id)["violation_count"] > 0
    assert browser.find_element(By.CSS_SELECTOR, "#detail-status").text == "success"
    listed = int(browser.find_element(By.CSS_SELECTOR, f'#runs tr[data-run="{run_id}"] .anomalies').text)
    assert listed == sum(on_page.values())

    # the token travelled in headers only: no URL the page asked for carries it
    urls = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls and not [u for u in urls if token in u]

    shot = artifacts(tmp_path) / "live-page.png"
    assert browser.save_screenshot(str(shot))
    print(f"screenshot: {shot}")
    content = shot.read_bytes()
    assert content.startswith(PNG) and len(content) > 20_000
