"""The status page in a real browser: Debian's headless Chromium, driven by Selenium,
against the suite's registry.

It loads ``/`` (which redirects to ``/ui``), waits for the providers table,
finds every provider of the session's config, then changes a provider of its
own (registered here, deleted at the end: the shared registry is left as it
was) and watches the page follow without a reload: a swap (new version, and
the event), a breaker opened by an unhealthy probe and closed by a trial call
(state and events). It checks the page at a phone width, saves screenshots
(``benchmarks/results/status_page.png``, the README's, and
``status_page_phone.png`` beside it; a copy in the test's tmp dir) and fails on any error in the browser's console.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import httpx
import pytest

from tests.integration.conftest import ADMIN_TOKEN, ROOT, SAMPLE

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
WAIT_S = 60  # deadline of each condition: a busy machine is slower, not red
PROBE = "ui-probe"
KEY = f"embeddings/{PROBE}"
SCREENSHOT = ROOT / "benchmarks" / "results" / "status_page.png"
# Without the background-networking flags Chromium dials Google at start, which a
# closed network refuses (and logs); a fresh profile per run keeps runs independent.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]


def _browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    missing = [p for p in (chromium, driver) if not os.path.exists(p)]
    if missing:
        pytest.skip(f"no browser to test the status page in: {', '.join(missing)} missing "
                    "(apt-get install chromium chromium-driver; .ci/run installs them)")
    pytest.importorskip("selenium", reason="selenium is in the dev extra (pip install -e '.[dev]')")
    return chromium, driver


@pytest.fixture
def browser(tmp_path):
    chromium, chromedriver = _browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1100"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.console = []  # every console entry of the test, read as it goes (get_log drains)
    try:
        yield driver
    finally:
        driver.quit()


def _console_errors(driver) -> list[dict]:
    driver.console.extend(driver.get_log("browser"))
    return [e for e in driver.console if e.get("level") == "SEVERE"]


def _wait(driver, condition, what: str):
    """Poll ``condition(driver)`` until truthy; fail naming ``what`` and the console's errors."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    def check(d):
        try:
            return condition(d)
        except StaleElementReferenceException:  # the page redrew the table meanwhile
            return False

    try:
        return WebDriverWait(driver, WAIT_S, poll_frequency=0.2).until(check)
    except Exception:
        problem = driver.execute_script("return document.getElementById('problem').textContent")
        raise AssertionError(f"the page did not show {what} within {WAIT_S} s; page problem: {problem!r}; "
                             f"console errors: {_console_errors(driver)}") from None


def _cell(driver, key: str, col: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f'#providers tr[data-key="{key}"] [data-col="{col}"]').text


def _event_shown(driver, kind: str, provider: str, version: str | None = None) -> bool:
    from selenium.webdriver.common.by import By

    for row in driver.find_elements(By.CSS_SELECTOR, f'#events tr[data-kind="{kind}"][data-provider="{provider}"]'):
        if version is None or row.find_element(By.CSS_SELECTOR, '[data-col="version"]').text == version:
            return True
    return False


def _default_keys(registry) -> list[str]:
    from providers.registry.table import RouteTable

    return sorted(RouteTable.from_config(registry["config"]).routes)


def test_status_page_follows_the_registry_live(registry, browser, tmp_path):
    from selenium.webdriver.common.by import By

    base = registry["http"]
    faults = tmp_path / "faults"
    faults.write_text("")
    admin = httpx.Client(base_url=base, headers=AUTH, timeout=180)
    r = admin.post(f"/v1/admin/providers/{KEY}", json={
        "class": f"{SAMPLE}.HashEmbedder", "config": {"label": PROBE, "dimension": 16, "fault_file": str(faults)},
        "deployment": {"num_cpus": 0.1}, "circuit_breaker": {"open_s": 3600}})
    assert r.status_code == 201, r.text
    try:
        for i in range(3):
            r = httpx.post(base + "/v1/embeddings", json={"model": PROBE, "input": [f"text {i}"]}, timeout=60)
            assert r.status_code == 200, r.text

        # -- the page loads through / and shows every provider of the config -----------------
        browser.get(base + "/?refresh=1")
        assert browser.current_url.startswith(base + "/ui?refresh=1")
        _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f'#providers tr[data-key="{KEY}"]'),
              f"the row of {KEY}")
        shown = {row.get_attribute("data-key") for row in browser.find_elements(By.CSS_SELECTOR, "#providers tbody tr")}
        assert set(_default_keys(registry)) <= shown, set(_default_keys(registry)) - shown
        assert browser.find_element(By.CSS_SELECTOR, "#providers caption").text
        assert browser.find_elements(By.CSS_SELECTOR, '#providers thead th[scope="col"]')
        row_header = browser.find_element(By.CSS_SELECTOR, f'#providers tr[data-key="{KEY}"] th[scope="row"]')
        assert row_header.text == PROBE
        assert _cell(browser, KEY, "type") == "embeddings"
        assert _cell(browser, KEY, "version") == "v1"
        assert _cell(browser, KEY, "breaker") == "closed"
        _wait(browser, lambda d: _cell(d, KEY, "replicas") == "1 / 1", "1 of 1 replicas running")
        assert int(_cell(browser, KEY, "calls").replace(",", "")) >= 3
        assert _cell(browser, KEY, "error_rate") == "0.0%"
        assert _cell(browser, KEY, "p50") != "\u2013"
        _wait(browser, lambda d: _event_shown(d, "registered", KEY, "v1"), "the registration event")
        _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '#stores tr[data-store="memories"] [data-col="count"]'),
              "the vector store memories")
        assert browser.find_element(By.CSS_SELECTOR, "#cache [data-field=hit_ratio]").text != "\u2013"
        browser.execute_script("window.__stayed = true")  # gone if the page reloads

        # -- a swap: the new version and its event, without a reload ---------------------------
        r = admin.post(f"/v1/admin/providers/{KEY}/swap", json={"config": {
            "label": PROBE + "-v2", "dimension": 16, "fault_file": str(faults)}})
        assert r.status_code == 200 and r.json()["version"] == 2, r.text
        _wait(browser, lambda d: _cell(d, KEY, "version") == "v2", "version v2 after the swap")
        _wait(browser, lambda d: _event_shown(d, "swapped", KEY, "v2"), "the swap event")

        # -- a breaker: opened by an unhealthy probe, closed by a trial call ------------------
        faults.write_text("unhealthy")
        r = httpx.get(f"{base}/v1/providers/{KEY}/health", timeout=60)
        assert r.status_code == 503, r.text
        _wait(browser, lambda d: _cell(d, KEY, "breaker") == "open", "the open breaker")
        _wait(browser, lambda d: _cell(d, KEY, "health") == "unhealthy", "the unhealthy probe")
        _wait(browser, lambda d: _event_shown(d, "breaker_opened", KEY, "v2"), "the breaker-opened event")
        _wait(browser, lambda d: _event_shown(d, "health_changed", KEY), "the health-change event")
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(SCREENSHOT)), "no screenshot"
        shutil.copy(SCREENSHOT, tmp_path / "status_page_1280.png")

        faults.write_text("")
        r = httpx.get(f"{base}/v1/providers/{KEY}/health", timeout=60)  # healthy: a trial is due
        assert r.status_code == 200, r.text
        r = httpx.post(base + "/v1/embeddings", json={"model": PROBE, "input": ["trial"]}, timeout=60)
        assert r.status_code == 200, r.text
        _wait(browser, lambda d: _cell(d, KEY, "breaker") == "closed", "the closed breaker")
        _wait(browser, lambda d: _event_shown(d, "breaker_closed", KEY), "the breaker-closed event")
        assert browser.execute_script("return window.__stayed === true"), "the page reloaded"

        # -- events are cluster-wide: another replica's list in GCS is merged in -------------
        _another_replicas_event_is_merged(base, registry["config"].registry.app_name)
        r = httpx.get(base + "/v1/events", params={"limit": "abc"}, timeout=30)
        assert r.status_code == 400 and r.json()["error"]["param"] == "limit"

        # -- a phone's width: the page fits, the tables scroll in their boxes ------------------
        browser.set_window_size(390, 844)
        _wait(browser, lambda d: d.execute_script("return window.innerWidth") <= 420, "the phone width")
        page_fits = browser.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth")
        table_scrolls = browser.execute_script(
            "const box = document.querySelector('#providers').parentElement;"
            "return getComputedStyle(box).overflowX === 'auto' && box.scrollWidth > box.clientWidth")
        assert page_fits and table_scrolls, (page_fits, table_scrolls)
        browser.save_screenshot(str(SCREENSHOT.with_name("status_page_phone.png")))
        print(f"\nstatus page screenshots: {SCREENSHOT}, {tmp_path}")
        assert _console_errors(browser) == []
    finally:
        admin.delete(f"/v1/admin/providers/{KEY}")
        admin.close()


def _another_replicas_event_is_merged(base: str, app_name: str) -> None:
    """An event published under another router replica's key (as a second replica would)
    comes back from /v1/events; the key is removed after."""
    from deployments.events import EventStore
    from deployments.table_store import NAMESPACE, _kv

    store = EventStore(app_name)
    event = {"id": "ui-test-replica:1", "at": round(time.time(), 3), "kind": "reloaded", "provider": KEY,
             "version": 99, "detail": "from another replica", "replica": "ui-test-replica"}
    store.write("ui-test-replica", [event])
    try:
        answer = httpx.get(base + "/v1/events", params={"limit": "1000"}, timeout=30).json()
        assert "ui-test-replica" in answer["router_replicas"], json.dumps(answer)[:500]
        assert any(e["id"] == "ui-test-replica:1" for e in answer["events"])
        mine = [e for e in answer["events"] if e["provider"] == KEY and e["replica"] != "ui-test-replica"]
        assert [e["kind"] for e in mine][:1] == ["breaker_closed"], mine[:3]  # newest first
    finally:
        _kv()._internal_kv_del((store.prefix + "ui-test-replica").encode(), namespace=NAMESPACE)
