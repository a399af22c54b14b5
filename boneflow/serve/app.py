"""The Gradio app (README, "Serving the champion"). `XrayApp` is the handler, free of Gradio so
it can be tested and timed directly (bench/app_latency.py); `build_ui` wires it into Gradio 6
Blocks; `launch_app` serves it with everything that would phone home switched off."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from boneflow.evaluate.gradcam import overlay_heatmap
from boneflow.intake.decode import ImageRejected
from boneflow.intake.layout import CLASSES
from boneflow.serve.champion import ChampionFollower, ServedModel, metrics_markdown
from boneflow.serve.errors import ImageRejectedError, ServeError
from boneflow.serve.examples import AppExamples, run_examples, synthetic_examples
from boneflow.serve.uploads import UploadLimits, check_upload

log = logging.getLogger(__name__)

# Small inputs (the 224 px crop) are shown scaled up to the box instead of as a thumbnail.
CSS = "#heatmap img { width: 100%; height: 100%; object-fit: contain; image-rendering: auto; }"

FAILED = (
    "⚠️ **Something went wrong** while analysing this image; the error was logged on the "
    "server. Try again, or try another image."
)
# Gradio keeps every upload in its temp folder; X-rays are patient data, so drop them after an
# hour (checked hourly) instead of keeping them until the server stops.
DELETE_CACHE = (3600, 3600)
MAX_QUEUE = 20  # requests waiting beyond this get Gradio's "queue is full" instead of a long wait
LOOPBACK = ("127.0.0.1", "localhost", "::1")
AUTH_ENV = "BONEFLOW_APP_AUTH"

NOTICE = (
    "**Not a medical device.** boneflow is a research demo trained on a public dataset. It must "
    "not be used to diagnose, treat or rule out a fracture; ask a clinician to read the X-ray."
)
HEATMAP_CAPTION = "Where the model looked for a fracture (Grad-CAM on the crop it saw)"


@dataclass(frozen=True)
class AppAnswer:
    """One answer. `label` is the model's decision at its operating threshold (model.json), the
    same one `predict` and evaluation report; every place the app shows a class shows it."""

    label: str
    prob_fractured: float  # calibrated (model.json's temperature)
    threshold: float  # the operating threshold `label` was decided at
    run_id: str
    overlay: np.ndarray  # RGB uint8 [crop, crop]: the input as the model saw it + Grad-CAM
    served: ServedModel

    def confidences(self) -> dict[str, float]:
        return {CLASSES[1]: self.prob_fractured, CLASSES[0]: round(1 - self.prob_fractured, 6)}

    def headline(self) -> dict[str, Any]:
        """The Prediction box: the decision over both probabilities (`_headline_is_the_decision`)."""
        return {
            "label": self.label,
            "confidences": [{"label": k, "confidence": v} for k, v in self.confidences().items()],
        }

    def summary(self) -> str:
        return (
            f"**{self.label}** · probability of fracture {self.prob_fractured:.3f} · decided at the "
            f"model's operating threshold {self.threshold:.3f} · model run `{self.run_id}`"
        )

    def heatmap_caption(self) -> str:
        p, t = self.prob_fractured, self.threshold
        return f"{HEATMAP_CAPTION} · decision: {self.label} (p = {p:.3f}, threshold {t:.3f})"


class XrayApp:
    """The app's end-to-end predict path for one uploaded file."""

    def __init__(self, store_url: str, *, limits: UploadLimits = UploadLimits(), cache_dir: Path | None = None) -> None:
        self.follower = ChampionFollower(store_url, cache_dir=cache_dir)
        self.limits = limits

    def model_info(self, served: ServedModel | None = None) -> str:
        """The served model's run and metrics, plus the notice of a failed champion update."""
        text = metrics_markdown(served or self.follower.current())
        if self.follower.last_error:
            text += f"\n\n⚠️ {self.follower.last_error}"
        return text

    def analyse(self, path: str | Path) -> AppAnswer:
        check_upload(Path(path), self.limits)
        served = self.follower.current()
        try:
            seen = served.predictor.explain(Path(path))
        except ImageRejected as err:
            raise ImageRejectedError(f"{Path(path).name}: {err.detail}; upload a PNG or JPEG X-ray") from None
        return AppAnswer(
            label=seen.label,
            prob_fractured=seen.prob_fractured,
            threshold=served.predictor.operating_point.threshold,
            run_id=seen.run_id,
            overlay=overlay_heatmap(seen.image, seen.heatmap),
            served=served,
        )


def _upload_path(payload: Any) -> str | None:
    # The event runs with preprocess=False: Gradio hands over its FileData dict untouched, so
    # the original bytes reach our checks and `load_xray` (no re-encode, no RGB conversion).
    if isinstance(payload, dict):
        return payload.get("path")
    return str(payload) if payload else None


def _headline_is_the_decision(label_box) -> None:
    """Make a gr.Label head {"label": decision, "confidences": [{label, confidence}, ...]} with
    the decision. Given bare probabilities it heads them with the most probable class (a 0.5
    cut), which disagrees with the model's operating threshold (model.json) between the two.
    Patched on the instance: a gr.Label subclass would make Gradio write a .pyi stub beside
    this module at import."""
    from gradio.components.label import LabelConfidence, LabelData

    plain = label_box.postprocess

    def postprocess(value):
        if isinstance(value, dict) and isinstance(value.get("confidences"), list):
            confidences = [LabelConfidence(label=c["label"], confidence=c["confidence"]) for c in value["confidences"]]
            return LabelData(label=str(value["label"]), confidences=confidences)
        return plain(value)

    label_box.postprocess = postprocess


def build_ui(xray_app: XrayApp, *, examples: AppExamples | None = None):
    import gradio as gr

    def no_heatmap():
        return gr.update(value=None, label=HEATMAP_CAPTION)

    def on_image(payload):  # → (headline, heat map update, status line, model info)
        path = _upload_path(payload)
        if path is None:
            return None, no_heatmap(), "Upload an X-ray (PNG or JPEG) or pick an example.", xray_app.model_info()
        try:
            answer = xray_app.analyse(path)
        except ImageRejectedError as err:
            # A message that stays (status line) plus a toast; the outputs are cleared so an
            # earlier answer is never shown next to a rejected upload.
            gr.Warning(str(err), title="Image rejected")
            return None, no_heatmap(), f"⚠️ **Image rejected.** {err}", xray_app.model_info()
        except Exception:
            # Internal errors stay in the server log: their text can hold paths and store details.
            log.exception("analysing an upload failed")
            return None, no_heatmap(), FAILED, xray_app.model_info()
        heatmap = gr.update(value=answer.overlay, label=answer.heatmap_caption())
        return answer.headline(), heatmap, answer.summary(), xray_app.model_info(answer.served)

    with gr.Blocks(title="boneflow · fracture check", delete_cache=DELETE_CACHE) as demo:
        gr.Markdown(
            "# boneflow · bone-fracture check\nUpload an X-ray; the current champion model "
            "says whether it sees a fracture and where it looked (Grad-CAM)."
        )
        gr.Markdown(NOTICE, elem_id="notice")
        with gr.Row():
            with gr.Column():
                image = gr.Image(
                    label="X-ray",
                    type="filepath",
                    image_mode=None,
                    sources=["upload", "clipboard"],
                    elem_id="xray-input",
                    height=320,
                )
                if examples:  # each with its true label beside it; clicking one fills the box above
                    true_label = gr.Textbox(label="True label of the example", interactive=False, elem_id="true-label")
                    gr.Examples(
                        examples=[[str(p), truth] for p, truth in zip(examples.paths, examples.labels)],
                        inputs=[image, true_label],
                        label=examples.title,
                    )
                    image.upload(lambda: "", outputs=[true_label])  # one's own upload has no true label
            with gr.Column():
                label = gr.Label(
                    label="Prediction (the model's decision at its operating threshold)",
                    num_top_classes=2,
                    elem_id="prediction",
                )
                _headline_is_the_decision(label)
                heatmap = gr.Image(
                    label=HEATMAP_CAPTION,
                    type="numpy",
                    format="png",
                    interactive=False,
                    elem_id="heatmap",
                    height=320,
                )
                status = gr.Markdown("Upload an X-ray (PNG or JPEG) or pick an example.", elem_id="status")
        info = gr.Markdown(elem_id="model-info")
        image.change(
            on_image, inputs=[image], outputs=[label, heatmap, status, info], preprocess=False, api_name="predict"
        )
        demo.load(xray_app.model_info, outputs=[info])
    return demo


def parse_auth(text: str | None) -> tuple[str, str] | None:
    """'user:password' → (user, password); None/'' → None. The value is never echoed back."""
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user.strip() or not password:
        raise ServeError(
            f"--auth / {AUTH_ENV} must be 'user:password' with both parts non-empty "
            "(the password may contain ':'); the value given is not"
        )
    return user.strip(), password


def exposure_warning(host: str, auth: tuple[str, str] | None) -> str | None:
    """A warning when the app is reachable beyond this machine without a password."""
    if auth is not None or host in LOOPBACK or host.startswith("127."):
        return None
    return (
        f"warning: the app listens on {host} without --auth: anyone who can reach it over the "
        f"network can use it. Set --auth user:password (or {AUTH_ENV}) and serve it behind TLS."
    )


def prepare_app(
    store_url: str,
    *,
    limits: UploadLimits = UploadLimits(),
    cache_dir: Path | None = None,
    max_queue: int = MAX_QUEUE,
    auth: tuple[str, str] | None = None,
):
    """(Gradio Blocks, keyword arguments for its launch()), the champion already loaded."""
    # Offline by design: no analytics, no share tunnel, no update check.
    for name, value in (("GRADIO_ANALYTICS_ENABLED", "False"), ("HF_HUB_OFFLINE", "1"), ("DO_NOT_TRACK", "1")):
        os.environ.setdefault(name, value)
    xray_app = XrayApp(store_url, limits=limits, cache_dir=cache_dir)
    served = xray_app.follower.current()  # load now: a missing champion is reported before serving
    example_dir = Path(tempfile.mkdtemp(prefix="boneflow-examples-"))
    atexit.register(shutil.rmtree, example_dir, ignore_errors=True)
    store = xray_app.follower.store
    examples = run_examples(store, served.predictor.run_id, example_dir) or synthetic_examples(example_dir)
    demo = build_ui(xray_app, examples=examples)
    # One model, one request at a time: latency stays flat; a bounded queue sheds the excess.
    demo.queue(default_concurrency_limit=1, max_size=max_queue)
    # show_error=False: an unexpected exception's text never reaches the browser (it is logged).
    return demo, dict(
        share=False,
        inbrowser=False,
        show_error=False,
        auth=auth,
        max_file_size=limits.max_bytes,
        allowed_paths=[str(example_dir)],
        ssr_mode=False,
        footer_links=["api"],
        # quiet: Gradio's own lines include a hint to set share=True; launch_app prints the URL
        quiet=True,
        css=CSS,
    )


def launch_app(
    store_url: str, *, host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | None = None, **options: Any
) -> None:
    """Serve until interrupted; `options` go to prepare_app. Fails early (BoneflowError) when the
    store has no champion."""
    warning = exposure_warning(host, auth)
    if warning:
        log.warning(warning)
        print(warning, file=sys.stderr)
    demo, launch_kwargs = prepare_app(store_url, auth=auth, **options)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=True, **launch_kwargs)
    print(f"serving the champion on {demo.local_url} (Ctrl-C stops it)", flush=True)
    demo.block_thread()
