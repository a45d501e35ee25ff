"""The web page in headless Chromium (Debian's, driven by Selenium; no browser is ever downloaded).

The fake microphone plays a wav file; the page's live captions must be exactly the final results the
server sent for that audio, and a file given to the page must show the server's transcript and word
timings, which equal the Recognizer's own for that file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_service_support import direct_file, live_server, speech_pcm16, wait_until, write_wav

from model.formats import full_text
from service import recognizer as service_recognizer
from service.routes import stream as stream_route
from service.settings import Settings

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DEADLINE = 120  # seconds; a deadline for a shared CI machine, not a measurement

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason="Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)",
)


@pytest.fixture()
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (dev extra)")
    from selenium.webdriver.chrome.service import Service

    wav = write_wav(tmp_path / "mic.wav", speech_pcm16((0, 1, 2), pause_seconds=0.7))
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 "--autoplay-policy=no-user-gesture-required",
                 f"--use-file-for-fake-audio-capture={wav}", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver, wav
    finally:
        driver.quit()


def _state(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).get_attribute("data-state")


def test_page_shows_live_captions_and_file_transcripts(browser, tmp_path, monkeypatch):
    driver, wav = browser
    heard = {"seconds": 0.0, "peak": 0}
    finals: list[str] = []
    accept, result_message = service_recognizer.Session._accept, stream_route.result_message

    def spy_accept(self, pcm):
        if pcm:
            heard["peak"] = max(heard["peak"], int(np.abs(np.frombuffer(pcm, "<i2").astype(np.int32)).max()))
        out = accept(self, pcm)
        heard["seconds"] = self.seconds
        return out

    def spy_result(segments, config):
        message = result_message(segments, config)
        if message["text"]:
            finals.append(message["text"])
        return message

    monkeypatch.setattr(service_recognizer.Session, "_accept", spy_accept)
    monkeypatch.setattr(stream_route, "result_message", spy_result)
    duration = speech_pcm16((0, 1, 2), pause_seconds=0.7).size / 16000

    with live_server(Settings()) as (address, _):
        driver.get(f"http://{address}/")
        assert driver.title == "EdgeScribe"
        driver.find_element("id", "start").click()
        wait_until(lambda: _state(driver, "status") in ("recording", "error"), "the microphone", DEADLINE)
        assert _state(driver, "status") == "recording", driver.find_element("id", "status").text
        wait_until(lambda: heard["seconds"] >= duration, "the wav to reach the server", DEADLINE)
        driver.find_element("id", "stop").click()
        wait_until(lambda: _state(driver, "status") in ("stopped", "error"), "the final result", DEADLINE)
        assert _state(driver, "status") == "stopped", driver.find_element("id", "status").text

        assert heard["peak"] > 1000, "the server heard silence: the fake microphone did not play the wav"
        captions = [li.text for li in driver.find_elements("css selector", "#captions li.final")]
        assert finals, "the server produced no final text for the wav"
        assert captions == finals

        driver.find_element("id", "file").send_keys(str(wav))
        wait_until(lambda: _state(driver, "file-status") in ("done", "error"), "the file transcript", DEADLINE)
        assert _state(driver, "file-status") == "done", driver.find_element("id", "file-status").text
        segments = direct_file(wav, Settings())
        assert driver.find_element("id", "transcript").text == full_text(segments)
        rows = [[td.text for td in tr.find_elements("tag name", "td")]
                for tr in driver.find_elements("css selector", "#words tbody tr")]
        assert rows == [[w.word, f"{w.start:.2f}", f"{w.end:.2f}"] for s in segments for w in s.words]
        assert rows, "no word timings shown"


def test_api_docs_render_from_this_server_alone(browser):
    driver, _ = browser
    with live_server(Settings()) as (address, _):
        driver.get(f"http://{address}/docs")
        paths = lambda: [e.text for e in driver.find_elements("css selector", ".opblock-summary-path")]  # noqa: E731
        wait_until(lambda: "/v1/audio/transcriptions" in paths(), "Swagger UI to list the endpoints", DEADLINE)
        loaded = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert any(url.endswith("/static/swagger/swagger-ui-bundle.js") for url in loaded), loaded
        assert all(url.startswith(f"http://{address}/") for url in loaded), loaded  # nothing from elsewhere
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors  # no script blocked by the page's CSP, no missing asset
