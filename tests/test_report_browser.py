"""The gate's report page in a real browser: Debian's headless Chromium, driven by its
chromedriver, the page shown as the Kubeflow UI shows an HTML artifact (in a sandboxed iframe)
and on its own. A day with one broken rule of each level: the verdict is on the first screen, each
broken rule shows its real offending values, the styling holds, and the page requests nothing.

Without chromium these tests skip; with DEEP_STORAGE_REQUIRE_BROWSER=1 (CI) they fail instead.
`make report-screenshot` runs them with DEEP_STORAGE_REPORT_SCREENSHOT set: the image in
docs/quality-rules.md.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import pytest

from deep_storage.lake import LakeFS
from deep_storage.quality import validate
from tests import report_lake

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WIDTH, HEIGHT = 1280, 800  # the first screen of a laptop


@pytest.fixture(scope="module")
def browser():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        reason = f"{', '.join(missing)} missing: apt-get install chromium chromium-driver"
        if os.environ.get("DEEP_STORAGE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason} (DEEP_STORAGE_REQUIRE_BROWSER=1: CI must run the browser tests)")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # Background networking off: on a closed network Chromium's own connections are refused, and
    # they would hide among (or be mistaken for) the page's requests.
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--window-size={WIDTH},{HEIGHT}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    # The window size includes no browser chrome in headless mode; make the viewport exact.
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
    )
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(spark, pg, tmp_path_factory) -> Path:
    """The gate's page of report_lake's broken day, as the gate wrote it to the S3 lake, with the
    source (PostgreSQL) holding a newer event than the lake: the lag is measured."""
    import uuid

    from tests.events import event, insert
    from tests.services import APP_DB, APP_PASSWORD, APP_USER, BUCKET

    with pg.connect(APP_DB, APP_USER, APP_PASSWORD) as conn:
        conn.execute("TRUNCATE stop_events")
        insert(conn, [event(report_lake.SOURCE_NEWEST)])
    lake = f"s3a://{BUCKET}/report-{uuid.uuid4().hex[:10]}"
    day = report_lake.build(spark, lake)
    report = validate.run(day, lake, spark=spark, as_of=report_lake.AS_OF, raise_on_failure=False)
    assert report.verdict()["verdict"] == "failed" and set(report.lag_s) == {"bronze", "silver"}
    text = LakeFS(lake).read_text(validate.report_uri(lake, day))
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(text)
    return path


def _requests(driver) -> list[str]:
    out = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            out.append(message["params"]["request"]["url"])
    return out


def test_the_page_alone_shows_the_verdict_first_and_the_real_offending_values(browser, page):
    from selenium.webdriver.common.by import By

    browser.get_log("performance")  # drop what came before this page
    browser.get(page.as_uri())
    verdict = browser.find_element(By.ID, "verdict")
    assert verdict.text.startswith("FAILED")
    box = browser.execute_script("return arguments[0].getBoundingClientRect().toJSON()", verdict)
    assert box["bottom"] <= HEIGHT and box["top"] >= 0, box  # on the first screen, unscrolled
    # Styled: the inline CSS applies (the verdict's red banner, bordered tables).
    assert verdict.value_of_css_property("background-color") == "rgba(176, 0, 32, 1)"
    cell = browser.find_element(By.CSS_SELECTOR, "td")
    assert cell.value_of_css_property("border-top-style") == "solid"

    # Each broken rule, by level, with its real offending values and the rows' ids.
    warned = browser.find_element(By.CSS_SELECTOR, '[data-offending="event_type_known"]')
    warned_rows = warned.find_element(By.XPATH, "following-sibling::table[1]").text
    assert report_lake.UNKNOWN_TYPE in warned_rows and "WARNED" in warned.text
    failed = browser.find_element(By.CSS_SELECTOR, '[data-offending="event_id_unique"]')
    failed_rows = failed.find_element(By.XPATH, "following-sibling::table[1]").text
    assert failed_rows.count(report_lake.DUPLICATED_ID) == 2 and "FAILED" in failed.text
    assert "False" not in warned_rows + failed_rows
    # The rule table: the fail rule first, with its count and share of the day's rows.
    first_rule = browser.find_element(By.CSS_SELECTOR, '[data-table="bronze_events"] tbody tr')
    assert first_rule.get_attribute("data-rule") == "event_id_unique"
    assert "FAILED" in first_rule.text and "2" in first_rule.text

    # Charts are inline SVG, with a bar per day of the fortnight.
    bars = browser.find_elements(By.CSS_SELECTOR, 'svg[aria-label="rows per day"] rect')
    assert len(bars) == 2 * 14
    # silver's manifests carry rows per status: a stacked bar per day
    statuses = browser.find_elements(
        By.CSS_SELECTOR, 'svg[aria-label^="executions per status"] rect'
    )
    assert len({s.get_attribute("x") for s in statuses}) == 14

    # Nothing but the page itself was requested: no CDN, font, image or script.
    requested = _requests(browser)
    assert requested == [page.as_uri()], requested
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0

    target = os.environ.get("DEEP_STORAGE_REPORT_SCREENSHOT")
    if target:  # the whole page, for docs/quality-rules.md
        import base64

        shot = browser.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )
        Path(target).write_bytes(base64.b64decode(shot["data"]))


def test_the_page_in_the_kubeflow_uis_sandboxed_frame_is_styled_and_requests_nothing(
    browser, page, tmp_path
):
    """The Kubeflow UI puts an HTML artifact in an iframe's srcdoc with a sandbox; the page
    must render there exactly as alone."""
    from selenium.webdriver.common.by import By

    host = tmp_path / "kfp-ui.html"
    host.write_text(
        "<!DOCTYPE html><html><body style='margin:0'>"
        f'<iframe id="artifact" sandbox="allow-scripts" style="width:{WIDTH}px;height:{HEIGHT}px;'
        f'border:0" srcdoc="{html.escape(page.read_text(), quote=True)}"></iframe>'
        "</body></html>"
    )
    browser.get_log("performance")
    browser.get(host.as_uri())
    browser.switch_to.frame(browser.find_element(By.ID, "artifact"))
    try:
        verdict = browser.find_element(By.ID, "verdict")
        assert verdict.get_attribute("data-verdict") == "failed"
        assert verdict.value_of_css_property("background-color") == "rgba(176, 0, 32, 1)"
        rows = browser.find_element(By.CSS_SELECTOR, '[data-offending="event_type_known"]')
        assert rows.is_displayed()
    finally:
        browser.switch_to.default_content()
    assert _requests(browser) == [host.as_uri()]


def test_the_quality_rules_page_shows_a_screenshot_of_the_page():
    """docs/quality-rules.md shows the page; its image must exist (make report-screenshot
    refreshes it)."""
    image = Path(__file__).parent.parent / "docs" / "images" / "quality-report.png"
    assert image.exists() and image.stat().st_size > 20_000, "run: make report-screenshot"
    assert "](images/quality-report.png)" in (image.parents[1] / "quality-rules.md").read_text()
