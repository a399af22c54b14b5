"""Follow the store's champion: serve it, and swap in the new one when it changes. Each request
costs one small read of champion.json (etag and run id compared to the loaded model's); only a
change triggers a download (sha256-checked, cached by hash) and a reload."""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boneflow.errors import BoneflowError
from boneflow.registry.publish import fetch_run_file, read_champion
from boneflow.serve.errors import NoChampionError, ServeError
from boneflow.serve.predictor import Predictor, champion_model
from boneflow.store import open_store
from boneflow.store.keys import RUN_ID_RE

log = logging.getLogger(__name__)


@dataclass
class ServedModel:
    predictor: Predictor
    etag: str | None
    metrics: dict[str, Any] | None = None  # the run's metrics.json, if published


def read_run_metrics(store, run_id: str) -> dict[str, Any] | None:
    """The run's metrics.json (sha256-checked like every download), or None if it has none."""
    with tempfile.TemporaryDirectory(prefix="boneflow-metrics-") as tmp:
        dest = Path(tmp) / "metrics.json"
        try:
            fetch_run_file(store, run_id, "metrics.json", dest)
            return json.loads(dest.read_text())
        except Exception as err:  # metrics are decoration: never block serving a model
            log.warning("runs/%s/metrics.json unavailable in %s: %s", run_id, store.url, err)
            return None


class ChampionFollower:
    """`current()` → the ServedModel for the champion now in the store (reloading if it changed).

    Once a model is served, no store failure turns a request into an error: the loaded model
    stays, `last_error` holds the page's notice and store checks back off (README, "Security
    model"). One request at a time talks to the store; the others get the served model."""

    retry_after = (5.0, 300.0)  # (first pause, longest pause) in seconds

    def __init__(self, store_url: str, *, cache_dir: Path | None = None) -> None:
        # S3 retries kept short: a request waits seconds, not minutes, for a dead server before
        # the served model answers it anyway.
        short_retries = dict(max_attempts=2, connect_timeout=3.0, read_timeout=10.0)
        self.store = open_store(store_url, **(short_retries if str(store_url).lower().startswith("s3://") else {}))
        self.cache_dir = cache_dir
        self.last_error: str | None = None  # browser-safe notice of the last failed update
        self.clock = time.monotonic
        self._served: ServedModel | None = None
        self._backoff = 0.0
        self._retry_at = 0.0
        self._lock = threading.Lock()

    def current(self) -> ServedModel:
        served = self._served
        if served is None:
            with self._lock:  # first load: errors go to the caller (the CLI says what to fix)
                return self._served or self._refresh(None)
        if self.clock() < self._retry_at or not self._lock.acquire(blocking=False):
            return served  # backing off, or another request is already checking the store
        try:
            return self._refresh(served)
        finally:
            self._lock.release()

    def _refresh(self, served: ServedModel | None) -> ServedModel:
        try:
            found = read_champion(self.store)
        except Exception as err:  # garbled JSON, store down, permissions: all the same here
            if served is None:
                raise _startup_error(f"could not read champion.json from {self.store.url}", err) from None
            return self._failed(served, "could not read champion.json from the store", err)
        if found is None:
            if served is not None:  # pointer gone (store being rebuilt?): keep what works
                return served
            raise NoChampionError(f"no champion in {self.store.url}; run `boneflow run` first")
        champion, etag = found
        if served is not None and served.etag == etag and served.predictor.run_id == champion.get("run_id"):
            self._recovered()
            return served
        try:
            return self._load(champion, etag)
        except Exception as err:
            if served is None:
                raise _startup_error(f"the champion in {self.store.url} could not be loaded", err) from None
            run_id = champion.get("run_id")
            valid = isinstance(run_id, str) and RUN_ID_RE.match(run_id)  # the notice reaches the page
            name = f"run {run_id}" if valid else "the run champion.json names"
            return self._failed(served, f"{name} could not be loaded", err)

    def _load(self, champion: dict[str, Any], etag: str) -> ServedModel:
        predictor = Predictor.from_run(self.store, *champion_model(champion, self.store.url), cache_dir=self.cache_dir)
        run_id = predictor.run_id
        self._served = ServedModel(predictor=predictor, etag=etag, metrics=read_run_metrics(self.store, run_id))
        self._recovered()
        log.info("serving champion %s (sha256 %s)", run_id, predictor.model_sha256[:12])
        return self._served

    def _failed(self, served: ServedModel, what: str, err: Exception) -> ServedModel:
        low, high = self.retry_after
        self._backoff = min(high, self._backoff * 2) if self._backoff else low
        self._retry_at = self.clock() + self._backoff
        self.last_error = (
            f"champion update failed: {what}; still serving run {served.predictor.run_id} "
            f"(next check in {self._backoff:.0f} s)"
        )
        # The notice stays generic (it reaches the browser); the cause is for the operator.
        log.error(
            "%s. Cause: %s: %s", self.last_error, type(err).__name__, err, exc_info=not isinstance(err, BoneflowError)
        )
        return served

    def _recovered(self) -> None:
        self._backoff, self._retry_at, self.last_error = 0.0, 0.0, None


def _startup_error(what: str, err: Exception) -> BoneflowError:
    if isinstance(err, BoneflowError):
        return err
    return ServeError(f"{what}: {type(err).__name__}: {err}")


def metrics_markdown(served: ServedModel) -> str:
    """Run id and the test metrics with their 95% intervals, as a small markdown table."""
    p = served.predictor
    lines = [f"**Model run** `{p.run_id}` · weights sha256 `{p.model_sha256[:12]}…`", ""]
    # metrics.json is store data: only numbers from it reach the page (see _f).
    metrics = served.metrics if isinstance(served.metrics, dict) else {}
    splits = metrics.get("splits")
    if not isinstance(splits, dict) or not splits:
        return "\n".join(lines + ["_This run published no metrics.json._"])
    from boneflow.evaluate.split_names import shown_splits, split_words

    policy = metrics.get("split_policy") if isinstance(metrics.get("split_policy"), dict) else None
    lines += [
        "| split | radiographs | accuracy (95% CI) | recall fractured | specificity | AUROC | ECE |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in shown_splits([k for k in ("test_clean", "test", "val") if k in splits], policy):
        m = splits.get(key)
        if not isinstance(m, dict) or not m:
            continue
        interval = m.get("accuracy_ci95")
        lo, hi = interval[:2] if isinstance(interval, list) and len(interval) >= 2 else (None, None)
        n = m.get("n")
        lines.append(
            f"| {split_words(key, policy)} | {n if isinstance(n, int) else '?'} | "
            f"{_f(m.get('accuracy'))} ({_f(lo)}–{_f(hi)}) | "
            f"{_f(m.get('recall_fractured'))} | {_f(m.get('specificity'))} | {_f(m.get('auroc'))} | "
            f"{_f(m.get('ece'))} |"
        )
    return "\n".join(lines)


def _f(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "–"
