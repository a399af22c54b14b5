"""The Gradio app in real Chromium: upload an X-ray, see the label, probability and heat map."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from PIL import Image

from boneflow.serve.app import AppAnswer
from boneflow.serve.examples import write_examples
from boneflow.serve.predictor import Predictor

pytestmark = pytest.mark.browser

TIMEOUT_MS = 60_000


def _upload(page, path) -> None:
    page.locator("#xray-input input[type=file]").set_input_files(str(path))


def _expected_answer(app_store, images: list, cache: Path):
    """(image, AppAnswer) for the first image whose fracture probability is clear of the rounding
    edges the page shows (3 decimals; whole percents), as the product's Predictor on the app's
    store computes it (the app's path: Predictor.explain, AppAnswer's formatting)."""
    predictor = Predictor.from_store(str(app_store), cache_dir=cache)
    for image in images:
        seen = predictor.explain(image)
        p = seen.prob_fractured
        if abs((p * 1000) % 1 - 0.5) > 0.1 and abs((p * 100) % 1 - 0.5) > 0.01:
            break
    answer = AppAnswer(
        label=seen.label,
        prob_fractured=seen.prob_fractured,
        threshold=predictor.operating_point.threshold,
        run_id=seen.run_id,
        overlay=seen.image,
        served=None,  # type: ignore[arg-type]  (summary() reads the numbers only)
    )
    return image, answer


def test_upload_shows_label_probability_heatmap_and_model(page, gradio_app, app_store, screenshot_dir, tmp_path):
    run_id = json.loads((app_store / "champion.json").read_text())["run_id"]
    image, expected = _expected_answer(app_store, write_examples(tmp_path / "upload", size=300), tmp_path / "cache")
    assert expected.run_id == run_id
    page.goto(gradio_app, wait_until="domcontentloaded")
    page.get_by_text("Not a medical device").wait_for(timeout=TIMEOUT_MS)
    page.locator("#model-info").get_by_text(run_id).first.wait_for(timeout=TIMEOUT_MS)
    assert page.get_by_text("Examples (synthetic)").count() >= 1

    _upload(page, image)
    heatmap = page.locator("#heatmap img")
    heatmap.wait_for(state="visible", timeout=TIMEOUT_MS)
    page.get_by_text("probability of fracture").wait_for(timeout=TIMEOUT_MS)
    status = page.locator("#status").inner_text()
    match = re.search(r"(fractured|not fractured) · probability of fracture (\d\.\d{3})", status)
    assert match, status
    # the served answer is the model's on this image: the label and the probability to 3 decimals
    assert (match.group(1), match.group(2)) == (expected.label, f"{expected.prob_fractured:.3f}"), status
    # the whole line as the app writes it (Markdown: bold label, run id as code)
    assert expected.summary().replace("**", "").replace("`", "") in status
    # the Prediction box: its title, the decision as headline, then each class with its
    # probability in whole percents (Gradio's Label: Math.round(confidence * 100))
    lines = [line.strip() for line in page.locator("#prediction").inner_text().splitlines() if line.strip()]
    percents = {label: f"{math.floor(p * 100 + 0.5)}%" for label, p in expected.confidences().items()}
    assert lines[1] == expected.label, lines
    assert lines[2:] == [x for label, percent in percents.items() for x in (label, percent)], lines
    # The heat map is a real image the browser decoded, at the model's input size.
    size = heatmap.evaluate("img => img.complete ? [img.naturalWidth, img.naturalHeight] : null")
    assert size == [64, 64], size
    shot = screenshot_dir / "gradio-app-prediction.png"
    page.screenshot(path=str(shot), full_page=True)
    assert Image.open(shot).size[0] > 0
    print(f"\nscreenshot: {shot}; expected {expected.label} at p = {expected.prob_fractured}")


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
