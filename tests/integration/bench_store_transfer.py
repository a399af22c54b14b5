"""Publish + verified fetch of a ResNet18-sized (45 MB) file: LocalStore vs moto S3 over HTTP.

Run: .venv/bin/python tests/integration/bench_store_transfer.py  (not collected by pytest)."""

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from s3_helpers import set_test_aws_env, start_moto_server

set_test_aws_env()  # before boneflow opens a boto3 session
from boneflow.registry.publish import fetch_run_file, publish_run  # noqa: E402
from boneflow.store import new_run_id, open_store  # noqa: E402

tmp = Path(tempfile.mkdtemp())
model = tmp / "model.safetensors"
model.write_bytes(os.urandom(45 * 1024 * 1024))
server = start_moto_server()
os.environ["AWS_ENDPOINT_URL"] = server.endpoint_url
server.create_bucket("bench")
try:
    for url in (str(tmp / "local"), "s3://bench/p"):
        store = open_store(url)
        rid = new_run_id()
        t = time.perf_counter()
        publish_run(store, rid, {"model.safetensors": model, "metrics.json": b"{}"}, code_version={})
        t1 = time.perf_counter()
        fetch_run_file(store, rid, "model.safetensors", tmp / "dl" / url[-5:].replace("/", "_"))
        t2 = time.perf_counter()
        kind = url.split(":")[0] if url.startswith("s3") else "local"
        print(
            f"{kind}: publish {t1 - t:.2f}s ({45 / (t1 - t):.0f} MB/s), "
            f"verified fetch {t2 - t1:.2f}s ({45 / (t2 - t1):.0f} MB/s)"
        )
finally:
    server.stop()
    shutil.rmtree(tmp, ignore_errors=True)
