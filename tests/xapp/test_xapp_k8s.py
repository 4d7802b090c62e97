"""KubernetesJobLauncher against an HTTP test double of the batch/v1 and core/v1 endpoints it
uses (a real HTTP server on localhost speaking the API's JSON, including the watch stream), and
the generated Job validated against the Kubernetes OpenAPI schema (kubernetes-validate, strict)."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes import client

from xapp.config import ArtifactStoreConfig, JobsConfig, ModelSigningConfig
from xapp.jobs import JobSpec
from xapp.launch_k8s import KubernetesJobLauncher, build_job, job_name, manifest

NS = "ricxapp"


@dataclass
class FakeApiServer:
    """Jobs created are completed (or failed) by ``finish(job)``, which the test supplies to
    emulate the pod: e.g. write the artifact, return ``(succeeded, log text)``."""

    finish: Any
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                api.requests.append(("POST", self.path))
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                name = body["metadata"]["name"]
                body["metadata"]["uid"] = f"uid-{name}"
                body["status"] = {"active": 1}
                api.jobs[name] = body
                self._json(201, body)

            def do_DELETE(self) -> None:
                api.requests.append(("DELETE", self.path))
                name = urllib.parse.urlparse(self.path).path.rsplit("/", 1)[1]
                if api.jobs.pop(name, None) is None:
                    self._json(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
                    return
                api.deleted.append(name)
                self._json(200, {"kind": "Status", "status": "Success"})

            def do_GET(self) -> None:
                api.requests.append(("GET", self.path))
                url = urllib.parse.urlparse(self.path)
                query = urllib.parse.parse_qs(url.query)
                if url.path == f"/apis/batch/v1/namespaces/{NS}/jobs" and "watch" in query:
                    self._watch(query["fieldSelector"][0].split("=", 1)[1])
                elif url.path == f"/api/v1/namespaces/{NS}/pods":
                    job = query["labelSelector"][0].split("=", 1)[1]
                    self._json(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {},
                                     "items": [{"metadata": {"name": f"{job}-abcde",
                                                             "creationTimestamp":
                                                             "2026-01-01T00:00:00Z"}}]})
                elif url.path.endswith("/log"):
                    pod = url.path.split("/")[-2]
                    self._text(api.logs.get(pod.rsplit("-", 1)[0], ""))
                else:
                    self._json(404, {"kind": "Status", "code": 404})

            def _text(self, text: str) -> None:
                data = text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _watch(self, name: str) -> None:
                job = api.jobs[name]
                succeeded, log = api.finish(job)
                api.logs[name] = log
                final = json.loads(json.dumps(job))
                kind = "Complete" if succeeded else "Failed"
                final["status"] = {"succeeded" if succeeded else "failed": 1, "conditions": [
                    {"type": kind, "status": "True",
                     "reason": None if succeeded else "BackoffLimitExceeded",
                     "message": None if succeeded
                     else "Job has reached the specified backoff limit"}]}
                events = [{"type": "ADDED", "object": job}, {"type": "MODIFIED", "object": final}]
                data = "".join(json.dumps(e) + "\n" for e in events).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


@pytest.fixture
def api_server() -> Iterator[tuple[FakeApiServer, client.ApiClient]]:
    api = FakeApiServer(finish=None)
    server = ThreadingHTTPServer(("127.0.0.1", 0), api.handler())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{server.server_address[1]}"
    yield api, client.ApiClient(configuration)
    server.shutdown()
    server.server_close()


def config(tmp_path: Path, gpus: int = 0) -> tuple[JobsConfig, ArtifactStoreConfig]:
    jobs = JobsConfig(image="127.0.0.1:5000/kdran-distill:0.1.0", namespace=NS, gpu_count=gpus,
                      resources={"requests": {"cpu": "2", "memory": "4Gi"},
                                 "limits": {"cpu": "4", "memory": "8Gi"}},
                      tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists",
                                    "effect": "NoSchedule"}],
                      node_selector={"kdran.io/pool": "train"})
    return jobs, ArtifactStoreConfig(path=str(tmp_path), pvc_claim_name="kdran-artifacts")


def spec(tmp_path: Path) -> JobSpec:
    return JobSpec("20260101000000-abc123", str(tmp_path / "data"), str(tmp_path / "out"),
                   "tiny", teacher=str(tmp_path / "teacher.pt"))


@pytest.mark.parametrize("gpus", [0, 1])
def test_job_manifest_is_valid_batch_v1(tmp_path: Path, gpus: int) -> None:
    jobs, store = config(tmp_path, gpus)
    signing = ModelSigningConfig(job_secret_name="kdran-signing")
    job = build_job(tmp_path / "spec.json", spec(tmp_path), {"group": "gnb_001/cell 1",
                                                             "trigger": "page_hinkley"},
                    jobs, store, signing, NS)
    body = manifest(job)
    kubernetes_validate.validate(body, "1.31.0", strict=True)
    pod = body["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["kdran", "job", "run", "--spec", str(tmp_path / "spec.json")]
    assert body["spec"]["activeDeadlineSeconds"] == 3600 and body["spec"]["backoffLimit"] == 1
    assert body["spec"]["ttlSecondsAfterFinished"] == 86400 and pod["restartPolicy"] == "Never"
    assert body["metadata"]["labels"]["kdran.io/group"] == "gnb_001-cell-1"
    assert body["metadata"]["labels"]["kdran.io/trigger"] == "page_hinkley"
    assert pod["volumes"][0]["persistentVolumeClaim"] == {"claimName": "kdran-artifacts"}
    limits = container["resources"]["limits"]
    assert limits.get("nvidia.com/gpu") == ("1" if gpus else None)
    assert body["metadata"]["name"] == job_name(spec(tmp_path).job_id)


def publish(out: Path) -> None:
    """What ``kdran job run`` leaves on the shared volume after publishing."""
    artifact = out / "artifact"
    artifact.mkdir(parents=True)
    (artifact / "model.onnx").write_bytes(b"onnx")
    (artifact / "card.json").write_text(json.dumps({"version": "kd-7"}))
    (out / "result.json").write_text(json.dumps({"ok": True, "reason": "",
                                                 "artifact": str(artifact), "gates": []}))


def test_job_watched_to_completion(api_server: tuple[FakeApiServer, client.ApiClient],
                                   tmp_path: Path) -> None:
    api, api_client = api_server
    jobs, store = config(tmp_path)
    job_spec = spec(tmp_path)

    def finish(job: dict[str, Any]) -> tuple[bool, str]:
        publish(Path(job_spec.output_dir))  # what the pod would write to the shared PVC
        return True, "phase=adapting\nphase=distilling\nphase=gates\nphase=published\n"

    api.finish = finish
    launcher = KubernetesJobLauncher(jobs, store, ModelSigningConfig(), api_client)
    phases: list[str] = []
    result = launcher.run(job_spec, tmp_path / "spec.json", {"group": "gnb-1"}, phases.append)
    assert result.outcome == "succeeded" and result.version == "kd-7"
    assert phases == ["adapting", "distilling", "gates", "published"]
    methods = [method for method, _ in api.requests]
    assert methods[0] == "POST" and api.requests[0][1] == f"/apis/batch/v1/namespaces/{NS}/jobs"
    assert any("watch=True" in path or "watch=true" in path for _, path in api.requests)


def test_failed_job_reports_reason_and_pod_logs(
        api_server: tuple[FakeApiServer, client.ApiClient], tmp_path: Path) -> None:
    api, api_client = api_server
    jobs, store = config(tmp_path)
    api.finish = lambda job: (False, "phase=adapting\nTraceback: CUDA out of memory\n")
    launcher = KubernetesJobLauncher(jobs, store, ModelSigningConfig(), api_client)
    result = launcher.run(spec(tmp_path), tmp_path / "spec.json", {}, lambda phase: None)
    assert result.outcome == "failed"
    assert result.reason == ("Job failed: BackoffLimitExceeded "
                             "Job has reached the specified backoff limit")
    assert "CUDA out of memory" in result.logs
    launcher.cancel(spec(tmp_path).job_id)
    assert api.deleted == [job_name(spec(tmp_path).job_id)]
    launcher.cancel("no-such-job")  # 404 is not an error
