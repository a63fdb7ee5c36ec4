"""The report as a student opens it: in a real headless browser (Chromium driven by Playwright).

The report must open on the night's summary, and every figure and table in it must load
without an error. A screenshot of the first page is kept in the work folder
(``qc/report_screenshot.png``) and, when ``AIFA_ARTEFACTS`` names a folder, copied there.

Without Playwright or Chromium the test is skipped, unless ``AIFA_BROWSER_TEST=required`` (CI
sets it: `make test` installs both).
"""

import os
import shutil
from pathlib import Path

import pytest

from ..helpers import run_snakemake

pytestmark = pytest.mark.slow

REQUIRED = os.environ.get("AIFA_BROWSER_TEST") == "required"

IMAGE_LOADED = """k => {
    const uri = results[k].data_uri;
    const img = [...document.images].find(i => i.src === uri);
    return img !== undefined && img.complete && img.naturalWidth > 0;
}"""


def _unavailable(why: str) -> None:
    if REQUIRED:
        pytest.fail(f"{why} (AIFA_BROWSER_TEST=required)")
    pytest.skip(why)


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_the_report_opens_on_the_summary_and_every_figure_and_table_loads(tiny_run):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[dev]')")
    browser_path = _chromium()
    if browser_path is None:
        _unavailable("no Chromium on this machine (Debian: apt-get install chromium)")
    work = tiny_run.work
    report = work / "report_browser.html"
    run_snakemake(tiny_run.tmp, "--configfile", str(tiny_run.config), "--report", str(report))
    problems: list[str] = []
    screenshot = work / "qc" / "report_screenshot.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=browser_path, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1280, "height": 800})  # a laptop's screen
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on(
            "console",
            lambda message: (
                problems.append(f"console error: {message.text}")
                if message.type == "error"
                else None
            ),
        )
        page.goto(report.as_uri())
        # The first page is the night's summary, with its numbers.
        element = page.wait_for_selector(".aifa-summary", timeout=60_000)
        summary = element.inner_text()
        for words in ("light frames reduced", "Qatar-1", "transit depth", "NGC7789"):
            assert words in summary, words
        # Its top (the verdict) is on the screen, not pushed above it out of reach.
        page.wait_for_timeout(500)
        assert element.bounding_box()["y"] >= 0, element.bounding_box()
        page.screenshot(path=str(screenshot))
        # Its figure links open the report's own entries.
        page.click(".aifa-summary a[href*='lightcurve.png']")
        page.wait_for_function(
            "() => [...document.images].some(i => i.src.startsWith('data:image/png')"
            " && i.naturalWidth > 500)",
            timeout=30_000,
        )
        results = page.evaluate(
            "() => Object.entries(results).map(([k, r]) => [k, r.mime_type, r.labels || {}])"
        )
        assert len(results) >= 10, results
        figures = tables = 0
        for key, mime, labels in results:
            if mime.startswith("image/"):
                page.evaluate(
                    "k => app.setView({content: 'img', contentPath: results[k].data_uri,"
                    " resultPath: k})",
                    key,
                )
                page.wait_for_function(IMAGE_LOADED, arg=key, timeout=30_000)
                figures += 1
            elif mime == "text/html":
                page.evaluate(
                    "k => app.setView({content: 'html', contentPath: results[k].data_uri,"
                    " resultPath: k, renderTrigger: k})",
                    key,
                )
                page.wait_for_selector("iframe", timeout=30_000)
                frame = next(f for f in page.frames if f.url.startswith("data:text/html"))
                frame.wait_for_load_state()
                text = frame.inner_text("body")
                assert text.strip(), key
                if "table" in labels:
                    assert frame.locator("table").count() >= 1, key
                    tables += 1
        browser.close()
    assert not problems, problems
    assert figures >= 8 and tables >= 2, (figures, tables)
    assert screenshot.stat().st_size > 20_000
    artefacts = os.environ.get("AIFA_ARTEFACTS")
    if artefacts:
        Path(artefacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(artefacts) / screenshot.name)
