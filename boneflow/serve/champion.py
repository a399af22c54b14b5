"""Follow the store's champion: serve it, and swap in the new one when it changes.

Each request costs one small read of champion.json (its etag and run id are compared to the
loaded model's); only a change triggers a download (sha256-checked, cached by hash) and a
reload. If the new champion cannot be loaded, the old one keeps serving and `last_error` says
why, so a half-published run never takes the app down.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boneflow.errors import BoneflowError
from boneflow.serve.errors import NoChampionError
from boneflow.serve.predictor import Predictor, champion_model

log = logging.getLogger(__name__)


@dataclass
class ServedModel:
    predictor: Predictor
    etag: str | None
    metrics: dict[str, Any] | None = field(default=None)  # the run's metrics.json, if published


def read_run_metrics(store, run_id: str) -> dict[str, Any] | None:
    """The run's metrics.json (sha256-checked like every download), or None if it has none."""
    from boneflow.publish import fetch_run_file

    with tempfile.TemporaryDirectory(prefix="boneflow-metrics-") as tmp:
        dest = Path(tmp) / "metrics.json"
        try:
            fetch_run_file(store, run_id, "metrics.json", dest)
            return json.loads(dest.read_text())
        except (BoneflowError, ValueError) as err:
            log.warning("runs/%s/metrics.json unavailable in %s: %s", run_id, store.url, err)
            return None


class ChampionFollower:
    """`current()` → the ServedModel for the champion now in the store (reloading if it changed)."""

    def __init__(self, store_url: str, *, cache_dir: Path | None = None) -> None:
        from boneflow.store import open_store

        self.store = open_store(store_url)
        self.cache_dir = cache_dir
        self.last_error: str | None = None
        self._served: ServedModel | None = None
        self._lock = threading.Lock()

    def current(self) -> ServedModel:
        from boneflow.publish import read_champion

        found = read_champion(self.store)
        served = self._served
        if found is None:
            if served is not None:  # pointer gone (store being rebuilt?): keep what works
                return served
            raise NoChampionError(f"no champion in {self.store.url}; run `boneflow run` first")
        champion, etag = found
        if served is not None and served.etag == etag and served.predictor.run_id == champion.get("run_id"):
            return served
        with self._lock:  # one reload at a time; the others wait and then see the new model
            served = self._served
            if served is not None and served.etag == etag and served.predictor.run_id == champion.get("run_id"):
                return served
            return self._load(champion, etag)

    def _load(self, champion: dict[str, Any], etag: str) -> ServedModel:
        from boneflow.serve.model_cache import cached_model
        from boneflow.serve.model_cache import MODEL_JSON, WEIGHTS

        try:
            run_id, sha256 = champion_model(champion, self.store.url)
            folder = cached_model(self.store, run_id, sha256, root=self.cache_dir)
            predictor = Predictor.from_files(folder / WEIGHTS, folder / MODEL_JSON, run_id=run_id, model_sha256=sha256)
        except BoneflowError as err:
            if self._served is None:
                raise
            self.last_error = f"champion {champion.get('run_id')} could not be loaded ({err}); still serving {self._served.predictor.run_id}"
            log.error(self.last_error)
            return self._served
        self._served = ServedModel(predictor=predictor, etag=etag, metrics=read_run_metrics(self.store, run_id))
        self.last_error = None
        log.info("serving champion %s (sha256 %s)", run_id, sha256[:12])
        return self._served


def metrics_markdown(served: ServedModel) -> str:
    """Run id and the test metrics with their 95% intervals, as a small markdown table."""
    p = served.predictor
    lines = [f"**Model run** `{p.run_id}` · weights sha256 `{p.model_sha256[:12]}…`", ""]
    splits = (served.metrics or {}).get("splits") or {}
    if not splits:
        return "\n".join(lines + ["_This run published no metrics.json._"])
    names = {"test_clean": "test (leak-free)", "test": "test (official)", "val": "validation"}
    lines += [
        "| split | n | accuracy (95% CI) | recall fractured | specificity | AUROC | ECE |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in ("test_clean", "test", "val"):
        m = splits.get(key)
        if not m:
            continue
        lo, hi = (m.get("accuracy_ci95") or [float("nan"), float("nan")])[:2]
        lines.append(
            f"| {names[key]} | {m.get('n', '?')} | {_f(m.get('accuracy'))} ({_f(lo)}–{_f(hi)}) | "
            f"{_f(m.get('recall_fractured'))} | {_f(m.get('specificity'))} | {_f(m.get('auroc'))} | "
            f"{_f(m.get('ece'))} |"
        )
    return "\n".join(lines)


def _f(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "–"
