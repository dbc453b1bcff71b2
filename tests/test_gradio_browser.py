"""The web app in a real browser: headless Chromium (Debian's) driven by Playwright.

Uploads the bundled sample clip, moves sliders with the keyboard, runs, waits for the video and
saves a screenshot to out/screenshots/gradio_app.png (and /tmp/gradio_app.png).
"""
import shutil
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api")

from gradio_app.app import SAMPLE_CLIP  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]
SCREENSHOT = Path(__file__).resolve().parents[1] / "out" / "screenshots" / "gradio_app.png"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")


@pytest.fixture(scope="module")
def page(app_url):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app_url)
        yield page
        browser.close()


def move_slider(page, elem_id: str, steps: int) -> str:
    """Press the right arrow ``steps`` times on a Gradio slider; return the value its number box shows."""
    slider = page.locator(f"#{elem_id} input[type=range]")
    slider.focus()
    for _ in range(steps):   # one notch a step: a press the page drops (still settling) is pressed again
        before = slider.input_value()
        for _attempt in range(3):
            page.keyboard.press("ArrowRight")
            try:
                sync_api.expect(slider).not_to_have_value(before, timeout=1_000)
                break
            except AssertionError:
                slider.focus()
    value = slider.input_value()
    number = page.locator(f"#{elem_id} input[type=number]")
    sync_api.expect(number).to_have_value(value)   # the number box follows the slider a moment later
    return number.input_value()


def test_upload_sample_move_sliders_run_and_screenshot(page, capsys):
    page.locator("#source-video input[type=file]").set_input_files(str(SAMPLE_CLIP))
    page.locator("#source-video video").wait_for(timeout=30_000)
    assert float(move_slider(page, "param-svmv-ensemble", 2)) == 6  # the default model's control: 4 -> 6
    assert float(move_slider(page, "preview-seconds", 4)) == pytest.approx(0.4)  # 10 of the 60 frames
    page.locator("#run").click()
    page.locator("#result-video video").wait_for(timeout=300_000)
    summary = page.locator("#summary")
    sync_api.expect(summary).to_contain_text("19 frames at 50 fps", timeout=30_000)  # (10-1)*2+1
    sync_api.expect(summary).to_contain_text("preview: the first 0.4 s")
    page.locator("#comparison-video video").wait_for(timeout=30_000)
    page.locator("#heat-map img").wait_for(timeout=30_000)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    shutil.copy(SCREENSHOT, "/tmp/gradio_app.png")
    with capsys.disabled():  # shown in CI's output, not captured
        print(f"\nscreenshot: {SCREENSHOT} (copy: /tmp/gradio_app.png)")
    assert SCREENSHOT.stat().st_size > 10_000


def test_cancel_button_stops_the_job_on_the_server(page):
    job_folders = lambda: set(Path(tempfile.gettempdir()).glob("vfi-app-*"))  # noqa: E731
    folders_before = job_folders()
    page.locator("#preview-seconds input[type=number]").fill("0")  # the whole clip: about a minute and a half
    page.locator("#preview-seconds input[type=number]").press("Enter")
    page.locator("#run").click()
    deadline = time.monotonic() + 60
    while not job_folders() - folders_before:  # the job has started on the server
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.2)
    page.locator("#cancel").click()
    cancelled_at = time.monotonic()
    while job_folders() - folders_before:  # its working folder goes when the pipeline stops
        assert time.monotonic() - cancelled_at < 30, "the job still runs 30 s after Cancel"
        time.sleep(0.2)


def test_mask_ratio_sliders_drive_mivids_adaptation(page):
    """mivid's mask ratios sit in the "Adapt to this clip" group; moved there, they reach the adaptation."""
    if not page.locator("#source-video video").count():
        page.locator("#source-video input[type=file]").set_input_files(str(SAMPLE_CLIP))
        page.locator("#source-video video").wait_for(timeout=30_000)
    page.locator("#model input").click()
    page.get_by_role("option", name="mivid", exact=True).click()
    page.locator("#adapt-group").get_by_text("Adapt to this clip").click()
    assert float(move_slider(page, "param-mivid-random_mask", 2)) == pytest.approx(0.4)   # 0.3 -> 0.4
    assert float(move_slider(page, "param-mivid-curriculum_end", 1)) == pytest.approx(0.65)
    assert float(move_slider(page, "adapt-adapt", 1)) == 10   # 0 -> 10 steps
    page.locator("#preview-seconds input[type=number]").fill("0.4")  # 10 of the 60 frames (windows of 7)
    page.locator("#preview-seconds input[type=number]").press("Enter")
    page.locator("#run").click()
    summary = page.locator("#summary")
    sync_api.expect(summary).to_contain_text("adapted to the clip", timeout=300_000)
    sync_api.expect(summary).to_contain_text("(10 steps, random_mask 0.4, motion_mask 0.3, curriculum_start 0.1, "
                                             "curriculum_end 0.65")
    sync_api.expect(summary).to_contain_text("19 frames at 50 fps")
