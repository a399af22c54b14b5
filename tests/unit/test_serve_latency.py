"""app_latency returns sane figures for the app's predict path (the timing itself is not asserted:
the CPU is shared; `boneflow bench infer` reports it)."""

from boneflow.bench.app_latency import app_latency


def test_app_latency_reports_percentiles(tmp_path, monkeypatch):
    monkeypatch.setenv("BONEFLOW_CACHE", str(tmp_path / "cache"))
    out = app_latency(n=5, size=64)
    assert out["n"] == 5 and out["image_size"] == 64 and out["upload_side"] == 73
    assert 0 < out["p50_ms"] <= out["p95_ms"]
