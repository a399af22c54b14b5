"""A store history for the gc tests: published, promoted, checkpointed and abandoned runs,
written through the real publish and transfer functions (small byte payloads, no training)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from boneflow.registry.publish import champion_record, promote, publish_run, read_champion
from boneflow.registry.transfer import upload_checkpoint
from boneflow.store.keys import new_run_id


def run_ids(n: int) -> list[str]:
    """n run ids in start-time order (a day apart, in the past)."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    return [new_run_id(start + timedelta(days=i)) for i in range(n)]


def add_checkpoints(store, run_id: str, tmp: Path, epochs: int = 2) -> list[str]:
    keys = []
    for epoch in range(1, epochs + 1):
        path = tmp / f"epoch-{epoch:04d}.pt"
        path.write_bytes(f"{run_id} epoch {epoch}".encode())
        keys.append(upload_checkpoint(store, run_id, path, keep=epochs))
    return keys


def publish(store, run_id: str, *, promote_it: bool = False) -> None:
    metrics = {"run_id": run_id, "splits": {}}
    files = {
        "model.safetensors": f"weights {run_id}".encode(),
        "model.json": b"{}",
        "metrics.json": json.dumps(metrics).encode(),
        "report.md": b"# report",
    }
    manifest = publish_run(store, run_id, files, code_version={})
    if promote_it:
        record = champion_record(
            run_id=run_id, manifest=manifest, metrics=metrics, dataset_fingerprint="0" * 16, config_fingerprint="0" * 16
        )
        found = read_champion(store)
        promote(store, record, expected_etag=found[1] if found else None)


def keys_of(store, run_id: str) -> set[str]:
    return set(store.list(f"runs/{run_id}/"))
