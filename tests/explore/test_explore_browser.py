"""The stream explorer in a real browser (Debian's headless Chromium, driven by Playwright).

A real worker on the embedded broker scores a stream with one spike; the alert it sends
(kafka sink) links to the explorer; the page drawn from that link must show the anomaly
and the expected band on the canvas, switch windows, open the incident and file feedback
that the worker records.
"""

from __future__ import annotations

import shutil
import urllib.parse

import pytest

from tests.explore.support import get_json, poll, produce_spiky_stream
from tests.support.kafka import read_all

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
N, SPIKE = 3000, 2700
STREAM = "web-7.latency"

# Colours the page draws with (streams/explore_page/explore.js) on the transparent canvas:
# the anomaly marker, and the band fill rgba(46,125,50,0.25).
COUNT_PIXELS = """([sel, rgba, tol]) => {
  let total = 0;
  for (const c of document.querySelectorAll(sel + " canvas")) {
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4) {
      if (Math.abs(d[i] - rgba[0]) <= tol && Math.abs(d[i + 1] - rgba[1]) <= tol &&
          Math.abs(d[i + 2] - rgba[2]) <= tol && Math.abs(d[i + 3] - rgba[3]) <= tol) total++;
    }
  }
  return total;
}"""
ANOMALY_RGBA, BAND_RGBA = (213, 0, 0, 255), (46, 125, 50, 64)


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail("the explorer's browser test needs Debian's chromium: apt-get install -y chromium "
                    "chromium-driver (.ci/run installs it when missing)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def test_alert_link_opens_the_stream_with_anomaly_band_incident_and_feedback(
        kafka_bootstrap, app_env, start_worker, browser, tmp_path):
    notify_topic = app_env["PYNOMALY_APP_ID"] + ".notify"
    worker = start_worker({**app_env, "PYNOMALY_NOTIFY_TOPIC": notify_topic})
    ts = produce_spiky_stream(kafka_bootstrap, app_env["PYNOMALY_TOPIC_EVENTS"], STREAM, N, SPIKE)

    def trigger():
        return [n for n in read_all(kafka_bootstrap, notify_topic, timeout=3, idle=0.3)
                if n and n.get("kind") == "trigger" and n.get("stream") == STREAM]

    alert = poll(trigger, 180, "the spike's incident notification")[0]
    link = alert["explore_url"]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
    assert link.startswith(f"http://127.0.0.1:{worker.env['PYNOMALY_WEB_PORT']}/explore?")
    assert query["stream"] == [STREAM] and query["incident"] == [alert["incident_id"]]
    assert abs(float(query["at"][0]) - ts[SPIKE]) <= 1

    # every event scored before the page is judged (the worker may still be catching up)
    api = link.split("/explore?")[0] + "/explore/api/series?"
    poll(lambda: get_json(api + urllib.parse.urlencode({"stream": STREAM, "at": query["at"][0],
                                                        "window": "6h"}))[1]["matched"] == N,
         120, f"all {N} scored records")

    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(link)
    chart = page.locator("#chart[data-state='ready']")
    chart.wait_for(timeout=30_000)
    page.screenshot(path=str(tmp_path / "explore-6h.png"), full_page=True)
    assert chart.get_attribute("data-points") == str(N)
    assert int(chart.get_attribute("data-anomalies")) >= 1
    assert int(chart.get_attribute("data-band-points")) >= N // 2
    assert int(chart.get_attribute("data-incidents")) >= 1
    assert chart.get_attribute("data-detector") == "rarity_likelihood"
    assert page.locator("#detector").inner_text().startswith("rarity_likelihood")
    # drawn, not just counted: red anomaly marker and green band pixels on the canvas
    assert page.evaluate(COUNT_PIXELS, ["#values-chart", ANOMALY_RGBA, 2]) >= 20
    assert page.evaluate(COUNT_PIXELS, ["#values-chart", BAND_RGBA, 3]) >= 200  # the value line covers most of it
    # the link names the incident: its detail is open
    detail = page.locator(f"#incident-detail[data-incident-id='{alert['incident_id']}']")
    assert detail.is_visible()
    assert "opened" in page.locator("#detail-transitions").inner_text()

    # switch the window: 1 h centred on the incident holds fewer points, the URL follows
    page.click("#windows button[data-window='1h']")
    page.locator("#chart[data-state='ready'][data-window='1h']").wait_for(timeout=30_000)
    points_1h = int(page.locator("#chart").get_attribute("data-points"))
    in_hour = sum(abs(t - float(query["at"][0])) <= 1800 for t in ts)
    assert points_1h == in_hour < N
    assert "window=1h" in page.url
    assert page.evaluate(COUNT_PIXELS, ["#values-chart", ANOMALY_RGBA, 2]) >= 20

    # open the incident from the list and file feedback; the worker records it
    page.click(f"#incident-list li[data-incident-id='{alert['incident_id']}'] button")
    page.select_option("#feedback-kind", "false_positive")
    page.fill("#feedback-by", "browser-test")
    page.fill("#feedback-comment", "deploy noise")
    page.click("#feedback-send")
    page.locator("#feedback-status[data-state='recorded']").wait_for(timeout=90_000)
    assert "false_positive by browser-test" in page.locator("#detail-feedback").inner_text()
    item = page.locator(f"#incident-list li[data-incident-id='{alert['incident_id']}']")
    assert item.get_attribute("data-feedback") == "1"
    assert errors == []
    page.screenshot(path=str(tmp_path / "explore.png"), full_page=True)
    page.close()
