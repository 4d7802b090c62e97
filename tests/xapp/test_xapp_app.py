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


def write_config(path: Path, cooldown_s: float, store: Path) -> None:
    document = json.loads((ROOT / "config-file.json").read_text())
    controls = document["controls"]
    controls["policy"]["cooldown_s"] = cooldown_s
    controls["jobs"].update(launcher="local", preset="tiny")
    controls["artifact_store"]["path"] = str(store)
    controls["rollout"].update(min_scored_predictions=100, poll_interval_s=0.0,
                               rollback_watch_s=0.0)
    controls["dapps"]["endpoints"] = [{"name": "du-1", "address": "fake:1",
                                       "e2_node": "gnb_001_001_00000001"}]
    path.write_text(json.dumps(document))


@pytest.fixture
def app(tmp_path: Path, job_command: list[str]) -> Iterator[tuple[XappApp, str, Path]]:
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
    reply = requests.post(f"{url}/kdran/v1/groups/{group}/trigger", json={}, timeout=5)
    assert reply.status_code == 202 and reply.json()["launched"]
    job_id = reply.json()["job_id"]
    again = requests.post(f"{url}/kdran/v1/groups/{group}/trigger", json={}, timeout=5)
    assert again.status_code == 409 and again.json()["job_in_flight"] == job_id
    assert xapp.controller.wait_idle(30)
    registry = requests.get(f"{url}/kdran/v1/registry", timeout=5).json()
    assert [j["outcome"] for j in registry["jobs"]] == ["succeeded"]
    assert registry["models"][0]["states"] == {"du-1": "active"}
    skip = requests.post(f"{url}/kdran/v1/groups/{group}/skip", json={"duration_s": 600},
                         timeout=5)
    assert skip.status_code == 200
    assert xapp.controller.policy.decide(group, time.time()).reason == "manual_skip"
    bad = requests.post(f"{url}/kdran/v1/groups/{group}/skip", json={"duration_s": "x"},
                        timeout=5)
    assert bad.status_code == 400
    assert requests.post(f"{url}/kdran/v1/groups/{group}/skip", data=b"[1",
                         timeout=5).status_code == 400


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
