"""scripts/gpu_bench.py must run on a GPU box that has only torch, torchvision, numpy and
pillow: run it tiny on the CPU and check it never imported any other third-party package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_bench.py"
NOT_ON_GPU_BOX = [
    "pydantic",
    "prefect",
    "sklearn",
    "scipy",
    "matplotlib",
    "typer",
    "safetensors",
    "boto3",
    "kagglehub",
    "gradio",
    "imagehash",
]

RUNNER = f"""
import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name='__main__')
finally:
    loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({NOT_ON_GPU_BOX!r}))
    print('LOADED', loaded, file=sys.stderr)
"""


def test_gpu_bench_runs_with_only_torch_numpy_pillow(tmp_path):
    args = [
        "--images",
        "96",
        "--epochs",
        "1",
        "--size",
        "32",
        "--batch-size",
        "32",
        "--seed-images",
        "64",
        "--seed-steps",
        "1",
        "--seed-workers",
        "0",
    ]
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, str(SCRIPT), *args], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LOADED []" in result.stderr, result.stderr[-500:]
    report = json.loads(result.stdout)
    assert {"ours", "ratio"} <= set(report) and report["ours"], report
