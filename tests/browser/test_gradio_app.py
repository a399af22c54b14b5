"""The Gradio app in real Chromium: upload an X-ray, see the label, probability and heat map."""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image

from boneflow.serve.examples import write_examples

pytestmark = pytest.mark.browser

TIMEOUT_MS = 60_000


def _upload(page, path) -> None:
    page.locator("#xray-input input[type=file]").set_input_files(str(path))


def test_upload_shows_label_probability_heatmap_and_model(page, gradio_app, app_store, screenshot_dir, tmp_path):
    run_id = json.loads((app_store / "champion.json").read_text())["run_id"]
    page.goto(gradio_app, wait_until="domcontentloaded")
    page.get_by_text("Not a medical device").wait_for(timeout=TIMEOUT_MS)
    page.locator("#model-info").get_by_text(run_id).first.wait_for(timeout=TIMEOUT_MS)
    assert page.get_by_text("Examples (synthetic)").count() >= 1

    image = write_examples(tmp_path / "upload", size=300)[0]
    _upload(page, image)
    heatmap = page.locator("#heatmap img")
    heatmap.wait_for(state="visible", timeout=TIMEOUT_MS)
    page.get_by_text("probability of fracture").wait_for(timeout=TIMEOUT_MS)
    status = page.locator("#status").inner_text()
    match = re.search(r"(fractured|not fractured) · probability of fracture (\d\.\d{3})", status)
    assert match, status
    assert run_id in status
    prediction = page.locator("#prediction").inner_text()
    assert match.group(1) in prediction
    # The heat map is a real image the browser decoded, at the model's input size.
    size = heatmap.evaluate("img => img.complete ? [img.naturalWidth, img.naturalHeight] : null")
    assert size == [64, 64], size
    shot = screenshot_dir / "gradio-app-prediction.png"
    page.screenshot(path=str(shot), full_page=True)
    assert Image.open(shot).size[0] > 0
    print(f"\nscreenshot: {shot}")


def test_non_image_upload_is_rejected_with_a_message(page, gradio_app, screenshot_dir, tmp_path):
    page.goto(gradio_app, wait_until="domcontentloaded")
    page.get_by_text("Not a medical device").wait_for(timeout=TIMEOUT_MS)
    fake = tmp_path / "report.png"
    fake.write_text("this is a text file pretending to be a PNG")
    _upload(page, fake)
    status = page.locator("#status")
    status.get_by_text("Image rejected").wait_for(timeout=TIMEOUT_MS)
    assert "report.png: not an image this app can read" in status.inner_text()
    assert page.locator("#heatmap img").count() == 0
    shot = screenshot_dir / "gradio-app-rejected.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"\nscreenshot: {shot}")


def test_example_click_runs_the_model(page, gradio_app, screenshot_dir):
    page.goto(gradio_app, wait_until="domcontentloaded")
    page.get_by_text("Examples (synthetic)").first.wait_for(timeout=TIMEOUT_MS)
    # examples with their true label render as a table, one row (tr.tr-body) per example
    page.locator(".gallery-item, [data-testid='examples'] button, table.examples-table td, tr.tr-body td").first.click()
    page.locator("#heatmap img").wait_for(state="visible", timeout=TIMEOUT_MS)
    page.get_by_text("probability of fracture").wait_for(timeout=TIMEOUT_MS)
    shot = screenshot_dir / "gradio-app-example.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"\nscreenshot: {shot}")
