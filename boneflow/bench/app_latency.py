"""End-to-end latency of the app's predict path for one uploaded image.

Timed: what one request costs after Gradio hands over the uploaded file — the upload checks,
the champion check (one read of champion.json), decode + preprocessing, the forward pass with
Grad-CAM, the overlay, and encoding the overlay as the PNG the browser receives. Not timed:
the HTTP round trip and Gradio's queue (they do not depend on the model).
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
from pathlib import Path


def timed(*fns, runs: int, warmup: int = 3) -> list[list[float]]:
    """Seconds per call of each of `fns`, called in alternation (so a neighbour's load falls on
    all alike), after `warmup` calls each (oneDNN builds its kernels for the first shapes)."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for fn, out in zip(fns, samples):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return samples


def app_latency(*, store_url: str | None = None, n: int = 50, size: int = 224, members: int = 1) -> dict:
    """p50/p95 milliseconds over `n` requests (after 3 warm-up requests). `store_url=None`: a
    throwaway store with an untrained champion of `size` px input (the timing does not depend on
    the weights), a fold ensemble of `members` when that is 2 or more. The uploaded image is a
    synthetic PNG of side size*8/7 (the packed side), so decoding does no large resize."""
    import torch
    from PIL import Image

    from boneflow.demo.store import write_demo_store
    from boneflow.serve.app import XrayApp
    from boneflow.serve.examples import write_examples

    with tempfile.TemporaryDirectory(prefix="boneflow-app-latency-") as tmp_name:
        tmp = Path(tmp_name)
        if store_url is None:
            store_url = str(tmp / "store")
            write_demo_store(store_url, image_size=size, members=members)
        xray_app = XrayApp(store_url, cache_dir=tmp / "cache")
        served = xray_app.follower.current()
        image = write_examples(tmp / "img", size=served.predictor.pack_size)[0]

        def one_request() -> None:
            answer = xray_app.analyse(image)
            Image.fromarray(answer.overlay).save(io.BytesIO(), format="PNG")

        times = sorted(seconds * 1000 for seconds in timed(one_request, runs=n)[0])
    return {
        "what": "app end-to-end predict path, one image "
        "(checks, champion check, decode, forward + Grad-CAM, overlay PNG)",
        "n": n,
        "image_size": served.predictor.image_size,
        "members": len(getattr(served.predictor.model, "members", [None])),
        "upload_side": served.predictor.pack_size,
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))], 2),
        "mean_ms": round(statistics.fmean(times), 2),
        "torch_threads": torch.get_num_threads(),
        "goal_p50_ms": 50,
    }
