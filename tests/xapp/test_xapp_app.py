"""The assembled xApp over HTTP: health and readiness, /metrics, manual trigger and skip, the
subscription-response callback, config reload on change of CONFIG_FILE, the CLI's parser, and
the rule that no xapp module imports torch."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from xapp_fakes import FakeDapp

from xapp.app import XappApp
from xapp.config import ConfigError, load_controls, parse_controls
from xapp.controller import Subscribed
from xapp.launch_local import LocalJobLauncher

ROOT = Path(__file__).resolve().parents[2]
TOKEN_ENV = "KDRAN_XAPP_TEST_TOKEN"
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def write_config(path: Path, cooldown_s: float, store: Path, **http: str) -> None:
    document = json.loads((ROOT / "config-file.json").read_text())
    controls = document["controls"]
    controls["policy"]["cooldown_s"] = cooldown_s
    controls["http"].update(token_env=TOKEN_ENV, **http)
    controls["jobs"].update(launcher="local", preset="tiny")
    controls["artifact_store"]["path"] = str(store)
    controls["rollout"].update(min_scored_predictions=100, poll_interval_s=0.0,
                               rollback_watch_s=0.0)
    controls["dapps"]["endpoints"] = [{"name": "du-1", "address": "fake:1",
                                       "e2_node": "gnb_001_001_00000001"}]
    path.write_text(json.dumps(document))


@pytest.fixture
def app(tmp_path: Path, job_command: list[str],
        monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[XappApp, str, Path]]:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    config = tmp_path / "config-file.json"
    write_config(config, 1800, tmp_path / "store")
    controls, _ = load_controls(config)
    dapp = FakeDapp("du-1")
    xapp = XappApp(controls, config, launcher=LocalJobLauncher(job_command, 30),
                   dapp_factory=lambda endpoint: dapp,  # type: ignore[arg-type,return-value]
                   http_port=0).start()
    yield xapp, f"http://127.0.0.1:{xapp.rest.port}", config
    xapp.controller.wait_idle(30)
    xapp.stop()


def test_health_ready_metrics(app: tuple[XappApp, str, Path]) -> None:
    xapp, url, _ = app
    assert requests.get(f"{url}/ric/v1/health/alive", timeout=5).status_code == 200
    ready = requests.get(f"{url}/ric/v1/health/ready", timeout=5)
    assert ready.status_code == 503 and ready.json()["reason"] == "no active E2 subscription"
    xapp.controller.subscriptions.add(5, Subscribed("gnb_001_001_00000001", "00101-000000001",
                                                    ()))
    assert requests.get(f"{url}/ric/v1/health/ready", timeout=5).status_code == 200
    metrics = requests.get(f"{url}/metrics", timeout=5)
    assert metrics.headers["Content-Type"].startswith("text/plain")
    assert 'kdran_xapp_kpm_reports_total{outcome="received"} 0.0' in metrics.text
    assert requests.get(f"{url}/nope", timeout=5).status_code == 404


def test_manual_trigger_and_skip(app: tuple[XappApp, str, Path]) -> None:
    xapp, url, _ = app
    group = "gnb_001_001_00000001"
    reply = requests.post(f"{url}/kdran/v1/groups/{group}/trigger", json={}, headers=AUTH,
                          timeout=5)
    assert reply.status_code == 202 and reply.json()["launched"]
    job_id = reply.json()["job_id"]
    again = requests.post(f"{url}/kdran/v1/groups/{group}/trigger", json={}, headers=AUTH,
                          timeout=5)
    assert again.status_code == 409 and again.json()["job_in_flight"] == job_id
    assert xapp.controller.wait_idle(30)
    registry = requests.get(f"{url}/kdran/v1/registry", timeout=5).json()
    assert [j["outcome"] for j in registry["jobs"]] == ["succeeded"]
    assert registry["models"][0]["states"] == {"du-1": "active"}
    skip = requests.post(f"{url}/kdran/v1/groups/{group}/skip", json={"duration_s": 600},
                         headers=AUTH, timeout=5)
    assert skip.status_code == 200
    assert xapp.controller.policy.decide(group, time.time()).reason == "manual_skip"
    bad = requests.post(f"{url}/kdran/v1/groups/{group}/skip", json={"duration_s": "x"},
                        headers=AUTH, timeout=5)
    assert bad.status_code == 400
    assert requests.post(f"{url}/kdran/v1/groups/{group}/skip", data=b"[1",
                         headers=AUTH, timeout=5).status_code == 400


def test_state_changing_endpoints_need_the_token(app: tuple[XappApp, str, Path],
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    xapp, url, config = app
    trigger = f"{url}/kdran/v1/groups/gnb_001_001_00000001/trigger"
    skip = f"{url}/kdran/v1/groups/gnb_001_001_00000001/skip"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        reply = requests.post(trigger, json={}, headers=headers, timeout=5)
        assert reply.status_code == 401, headers
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert requests.post(skip, json={"duration_s": 5}, timeout=5).status_code == 401
    assert xapp.controller.registry.jobs() == []  # nothing ran
    # Health, metrics and the registry view stay open.
    for path in ("/ric/v1/health/alive", "/metrics", "/kdran/v1/registry"):
        assert requests.get(f"{url}{path}", timeout=5).status_code == 200
    # No token configured: disabled (403 with the reason), not open.
    monkeypatch.delenv(TOKEN_ENV)
    refused = requests.post(skip, json={"duration_s": 5}, headers=AUTH, timeout=5)
    assert refused.status_code == 403 and f"${TOKEN_ENV} is unset" in refused.json()["error"]
    # A token file (a mounted Secret) wins over the variable and is re-read on rotation.
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    write_config(config, 1800, tmp_path / "store", token_file=str(token_file))
    assert xapp.watcher is not None and xapp.watcher.check()
    ok = requests.post(skip, json={"duration_s": 5}, timeout=5,
                       headers={"Authorization": "Bearer from-file"})
    assert ok.status_code == 200
    token_file.write_text("rotated")
    assert requests.post(skip, json={"duration_s": 5}, timeout=5,
                         headers={"Authorization": "Bearer from-file"}).status_code == 401
    token_file.unlink()
    assert requests.post(skip, json={"duration_s": 5}, timeout=5,
                         headers={"Authorization": "Bearer rotated"}).status_code == 403


def test_subscription_response_reaches_callback(app: tuple[XappApp, str, Path]) -> None:
    xapp, url, _ = app
    seen: list[dict[str, Any]] = []
    xapp.on_subscription_response = seen.append
    body = {"SubscriptionId": "s1", "SubscriptionInstances": [{"XappEventInstanceId": 1,
                                                               "E2EventInstanceId": 9}]}
    assert requests.post(f"{url}/ric/v1/subscriptions/response", json=body,
                         timeout=5).status_code == 200
    assert seen == [body]


def test_config_reload_on_change(app: tuple[XappApp, str, Path], tmp_path: Path) -> None:
    xapp, _, config = app
    assert xapp.watcher is not None and not xapp.watcher.check()
    write_config(config, 60, tmp_path / "store")
    assert xapp.watcher.check()
    assert xapp.controller.controls.policy.cooldown_s == 60
    config.write_text("{not json")
    assert not xapp.watcher.check()  # a broken file keeps the running configuration
    assert xapp.controller.controls.policy.cooldown_s == 60


def test_config_file_controls_parse_and_bad_values_are_named() -> None:
    controls, unknown = load_controls(ROOT / "config-file.json")
    assert unknown == []
    assert controls.e2.nodes[0].meid == "gnb_001_001_00000001"
    with pytest.raises(ConfigError, match=r"policy\.cooldown_s must be a number"):
        parse_controls({"policy": {"cooldown_s": "soon"}})
    with pytest.raises(ConfigError, match=r"jobs\.launcher must be one of"):
        parse_controls({"jobs": {"launcher": "ssh"}})
    assert parse_controls({"future": {"x": 1}})[1] == ["future"]


def test_cli_parser_and_no_torch_import() -> None:
    code = ("import sys, pkgutil, importlib, xapp\n"
            "skip = {'xapp.ric'}  # loads librmr_si.so (tests marked rmr)\n"
            "names = [m.name for m in pkgutil.walk_packages(xapp.__path__, 'xapp.')]\n"
            "for name in names:\n"
            "    if name not in skip: importlib.import_module(name)\n"
            "from kdran.cli import build_parser\n"
            "build_parser().parse_args(['xapp', 'run', '--mode', 'local'])\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "print(len(names))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= 20


@pytest.mark.rmr
def test_ric_adapter_imports_with_librmr() -> None:
    out = subprocess.run([sys.executable, "-c", "import sys, xapp.ric; "
                          "assert 'torch' not in sys.modules; print(xapp.ric.RMR_PORT)"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "4560"


def test_dapp_tls_per_endpoint_overrides_the_default(tmp_path: Path) -> None:
    from xapp.app import client_tls
    from xapp.config import DappEndpoint, TlsConfig
    default = TlsConfig(enabled=True, ca_file=str(tmp_path / "ca.pem"))
    own = TlsConfig(enabled=True, ca_file=str(tmp_path / "du2-ca.pem"),
                    cert_file=str(tmp_path / "xapp.pem"), key_file=str(tmp_path / "xapp.key"),
                    server_name_override="du-2.ran")
    plain, special = DappEndpoint("du-1", "a:1"), DappEndpoint("du-2", "b:1", tls=own)
    assert client_tls(plain.tls_for(TlsConfig())) is None  # TLS off unless configured
    assert client_tls(plain.tls_for(default)).ca == tmp_path / "ca.pem"
    tls = client_tls(special.tls_for(default))
    assert (tls.ca, tls.cert, tls.key, tls.server_name) == (
        tmp_path / "du2-ca.pem", tmp_path / "xapp.pem", tmp_path / "xapp.key", "du-2.ran")
    assert tls.options() == [("grpc.ssl_target_name_override", "du-2.ran")]
    with pytest.raises(ValueError, match="needs its key"):
        client_tls(TlsConfig(enabled=True, cert_file="x.pem"))
    controls, _ = parse_controls({"dapps": {"endpoints": [
        {"name": "du-2", "address": "b:1", "tls": {"enabled": True, "ca_file": "/ca.pem"}}]}})
    assert controls.dapps.endpoints[0].tls.ca_file == "/ca.pem"
