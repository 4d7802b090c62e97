"""The xApp's HTTP server (port 8080 by default): health, metrics, subscription responses and the
manual trigger/skip API.

- ``GET /ric/v1/health/alive``: 200 while the process serves.
- ``GET /ric/v1/health/ready``: 200 when the registry is reachable and E2 subscriptions exist,
  else 503 with the reason.
- ``GET /metrics``: Prometheus text exposition.
- ``POST /ric/v1/subscriptions/response``: the subscription manager's asynchronous answer
  (``SubscriptionId``, ``SubscriptionInstances[{XappEventInstanceId, E2EventInstanceId,
  ErrorCause, ...}]``).
- ``POST /kdran/v1/groups/<group>/trigger`` (body ``{"e2_node": "..."}``, optional): launch a
  job now (202 with ``job_id``; 409 with the policy's reason when refused).
- ``POST /kdran/v1/groups/<group>/skip`` (body ``{"duration_s": 3600}``): suppress drift
  triggers for the group (0 lifts the skip).
- ``GET /kdran/v1/registry``: models, jobs and dApp roles as JSON.

The trigger and skip endpoints change state and need ``Authorization: Bearer <token>``
(``xapp.auth``): 401 without or with a wrong token, 403 while no token is configured. Health,
metrics, the registry view and the subscription manager's callback stay open (the subscription
manager sends no credentials).
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from xapp.auth import AuthError, TokenAuth
from xapp.controller import Controller

log = logging.getLogger("kdran.xapp.rest")

MAX_BODY_BYTES = 1 << 20
SubscriptionCallback = Callable[[dict[str, Any]], None]
ReadyCheck = Callable[[], tuple[bool, str]]


class _Reply(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status, self.body = status, body


class RestServer:
    """Owns the ``ThreadingHTTPServer``; ``start()`` serves in a daemon thread."""

    def __init__(self, controller: Controller, host: str, port: int, ready: ReadyCheck,
                 on_subscription_response: SubscriptionCallback) -> None:
        self.controller = controller
        self.ready = ready
        self.on_subscription_response = on_subscription_response
        self.server = ThreadingHTTPServer((host, port), self._handler_class())
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self.server.server_address[1])

    def start(self) -> RestServer:
        self._thread = threading.Thread(target=self.server.serve_forever, name="rest",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- routes ----------------------------------------------------------------------------------
    def get(self, path: str) -> tuple[int, Any]:
        if path == "/ric/v1/health/alive":
            return 200, {"status": "alive"}
        if path == "/ric/v1/health/ready":
            ok, reason = self.ready()
            return (200, {"status": "ready"}) if ok else (503, {"status": "not ready",
                                                               "reason": reason})
        if path == "/kdran/v1/registry":
            registry = self.controller.registry
            return 200, {"models": [asdict(r) for r in registry.models()],
                         "jobs": [asdict(j) for j in registry.jobs()],
                         "dapps": {e.name: registry.dapp_roles(e.name)
                                   for e in self.controller.controls.dapps.endpoints}}
        raise _Reply(404, {"error": f"no route GET {path}"})

    def post(self, path: str, body: dict[str, Any], authorization: str | None = None) -> \
            tuple[int, Any]:
        if path == "/ric/v1/subscriptions/response":
            self.on_subscription_response(body)
            return 200, {}
        parts = path.strip("/").split("/")
        if len(parts) == 5 and parts[:3] == ["kdran", "v1", "groups"] \
                and parts[4] in ("trigger", "skip"):
            self._authorize(path, authorization)
            group = urllib.parse.unquote(parts[3])
            if parts[4] == "trigger":
                return self._trigger(group, body)
            if parts[4] == "skip":
                duration = body.get("duration_s")
                if isinstance(duration, bool) or not isinstance(duration, int | float) \
                        or duration < 0:
                    raise _Reply(400, {"error": "duration_s must be a number >= 0"})
                self.controller.skip(group, float(duration))
                return 200, {"group": group, "skipped_for_s": duration}
        raise _Reply(404, {"error": f"no route POST {path}"})

    def _authorize(self, path: str, authorization: str | None) -> None:
        try:
            TokenAuth.from_config(self.controller.controls.http).check(authorization)
        except AuthError as exc:
            log.warning("request refused", extra={"fields": {"path": path, "status": exc.status,
                                                             "reason": exc.message}})
            raise _Reply(exc.status, {"error": exc.message}) from None

    def _trigger(self, group: str, body: dict[str, Any]) -> tuple[int, Any]:
        e2_node = body.get("e2_node", group.split("/")[0])
        if not isinstance(e2_node, str) or not e2_node:
            raise _Reply(400, {"error": "e2_node must be a non-empty string"})
        job_id = self.controller.trigger(group, e2_node, reason="manual", manual=True)
        if job_id is None:
            state = self.controller.registry.group_states().get(group)
            return 409, {"group": group, "launched": False,
                         "job_in_flight": state.job_id if state else ""}
        return 202, {"group": group, "launched": True, "job_id": job_id}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                log.debug(format % args)

            def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Bearer realm="kdran-xapp"')
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                path = urllib.parse.urlparse(self.path).path
                if path == "/metrics":
                    metrics = server.controller.metrics
                    self._send(200, metrics.exposition(), metrics.content_type)
                    return
                try:
                    self._send(*server.get(path))
                except _Reply as reply:
                    self._send(reply.status, reply.body)

            def do_POST(self) -> None:
                path = urllib.parse.urlparse(self.path).path
                try:
                    self._send(*server.post(path, self._body(),
                                            self.headers.get("Authorization")))
                except _Reply as reply:
                    self._send(reply.status, reply.body)

            def _body(self) -> dict[str, Any]:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    raise _Reply(413, {"error": f"body over {MAX_BODY_BYTES} bytes"})
                raw = self.rfile.read(length) if length else b"{}"
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError as exc:
                    raise _Reply(400, {"error": f"body is not JSON: {exc}"}) from None
                if not isinstance(body, dict):
                    raise _Reply(400, {"error": "body must be a JSON object"})
                return body

        return Handler
