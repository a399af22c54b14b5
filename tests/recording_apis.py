"""Small recording stand-ins for the Kubernetes API and the Docker Engine API, on 127.0.0.1.

The real workers (`prefect worker start --type kubernetes|docker`) talk to these through their
real clients (kubernetes-asyncio with a kubeconfig, docker-py with DOCKER_HOST); each stand-in
answers just the calls a worker makes to submit one flow run and records every request, so a
test can assert exactly what would have reached a cluster or a Docker daemon.

    with RecordingKubernetesAPI() as k8s:
        env["KUBECONFIG"] = str(k8s.write_kubeconfig(tmp_path))
        ...  # run the worker
        job = k8s.bodies("POST", "/apis/batch/v1/namespaces/boneflow/jobs")[0]
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class Request:
    method: str
    path: str  # without the query string
    query: str
    body: dict | None


class _RecordingAPI:
    """A threaded HTTP server whose handler is `self.answer(request) -> (status, body)`."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                request = Request(self.command, url.path, url.query, json.loads(raw) if raw else None)
                with api._lock:
                    api.requests.append(request)
                status, body = api.answer(request)
                payload = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle

            def log_message(self, *args) -> None:  # the tests read self.requests instead
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, request: Request) -> tuple[int, dict | bytes | None]:
        raise NotImplementedError

    def bodies(self, method: str, path_pattern: str) -> list[dict]:
        """Bodies of the recorded requests whose method matches and path fully matches the regex."""
        with self._lock:
            return [r.body for r in self.requests if r.method == method and re.fullmatch(path_pattern, r.path)]

    def calls(self) -> list[str]:
        with self._lock:
            return [f"{r.method} {r.path}" for r in self.requests]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class RecordingKubernetesAPI(_RecordingAPI):
    """Creates and deletes Jobs (batch/v1); everything else is 404 like an unknown resource."""

    JOBS = re.compile(r"/apis/batch/v1/namespaces/([^/]+)/jobs(?:/([^/]+))?")

    def answer(self, request: Request):
        match = self.JOBS.fullmatch(request.path)
        if match and request.method == "POST":
            job = dict(request.body)
            meta = dict(job.get("metadata") or {})
            meta.update(
                name=meta.get("generateName", "job-") + uuid.uuid4().hex[:5],
                namespace=match.group(1),
                uid=str(uuid.uuid4()),
                creationTimestamp="2026-01-01T00:00:00Z",
            )
            job["metadata"] = meta
            return 201, job
        if match and request.method == "DELETE" and match.group(2):
            return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
        return 404, {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "reason": "NotFound",
            "code": 404,
            "message": f"{request.path} is not served by the stand-in",
        }

    def write_kubeconfig(self, folder: Path) -> Path:
        """A kubeconfig whose current context points at this server (plain HTTP, a dummy token)."""
        path = Path(folder) / "kubeconfig"
        path.write_text(
            json.dumps(
                {  # JSON is YAML: no PyYAML needed to write it
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "stand-in",
                    "clusters": [{"name": "stand-in", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
                    "users": [{"name": "stand-in", "user": {"token": "not-a-secret"}}],
                    "contexts": [{"name": "stand-in", "context": {"cluster": "stand-in", "user": "stand-in"}}],
                }
            )
        )
        return path


class RecordingDockerAPI(_RecordingAPI):
    """The Engine API calls of one `docker run`: version, image inspect, create, start, logs,
    wait. The container "exits 0" as soon as it is started; nothing runs."""

    VERSION = {"ApiVersion": "1.45", "MinAPIVersion": "1.24", "Version": "27.0.0", "Os": "linux", "Arch": "amd64"}

    def __init__(self) -> None:
        super().__init__()
        self.containers: dict[str, dict] = {}

    @property
    def docker_host(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def answer(self, request: Request):
        path = re.sub(r"^/v\d+\.\d+", "", request.path)
        if path in ("/version", "/_ping"):
            return 200, self.VERSION if path == "/version" else b"OK"
        if re.fullmatch(r"/images/.+/json", path):
            return 200, {"Id": "sha256:" + "0" * 64, "RepoTags": [path[len("/images/") : -len("/json")]]}
        if path == "/containers/create" and request.method == "POST":
            container_id = uuid.uuid4().hex
            name = re.search(r"(?:^|&)name=([^&]+)", request.query)
            self.containers[container_id] = {
                "Id": container_id,
                "Name": "/" + (name.group(1) if name else container_id[:12]),
                "Config": {**request.body, "Tty": False},
                "Image": request.body.get("Image"),
                "State": {"Status": "created", "Running": False, "ExitCode": 0},
            }
            return 201, {"Id": container_id, "Warnings": []}
        match = re.fullmatch(r"/containers/([0-9a-f]+)(/[a-z]+)?", path)
        if match and match.group(1) in self.containers:
            container, action = self.containers[match.group(1)], match.group(2)
            if action == "/start":
                container["State"] = {"Status": "exited", "Running": False, "ExitCode": 0}
                return 204, None
            if action == "/json":
                return 200, container
            if action == "/logs":
                return 200, b""
            if action == "/wait":
                return 200, {"StatusCode": 0, "Error": None}
            if action is None and request.method == "DELETE":
                return 204, None
        return 404, {"message": f"{request.method} {request.path} is not served by the stand-in"}
