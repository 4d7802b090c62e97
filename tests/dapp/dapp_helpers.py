"""Helpers shared by the dApp tests (imported by basename; pytest puts this folder on sys.path)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import onnx

from csi.presets import TINY, Preset
from csi.synthetic import multipath_channels
from dapp.artifact import write_artifact
from dapp.engine import EngineConfig
from dapp.onnx_models import linear_model, outdated_model
from dapp.server import DappServer, ServerConfig, build_dapp

T = TypeVar("T")
MakeArtifact = Callable[..., Path]
BUILDERS = {"linear": linear_model, "outdated": outdated_model}


def doppler_channels(n: int, steps: int, speed_kmh: float = 30.0, seed: int = 0) -> np.ndarray:
    """``csi.synthetic`` multipath channels ``[n, steps, antenna, rb]`` at the tiny geometry."""
    return multipath_channels(TINY, n, speed_kmh, n_paths=4, steps=steps, seed=seed)


def write_test_artifact(directory: Path, kind: str, version: str,
                        preset: Preset = TINY) -> Path:
    """An artifact directory with a ``kind`` ("linear"/"outdated") model of ``version``."""
    directory.mkdir(parents=True)
    onnx.save(BUILDERS[kind](preset, version), directory / "model.onnx")
    write_artifact(directory, directory / "model.onnx",
                   {"version": version, "kind": kind, "preset": preset.name})
    return directory


def serve_subprocess(state: Path, port: int, log: Path,
                     seed: Path | None = None) -> subprocess.Popen[bytes]:
    """``kdran dapp serve`` (tiny preset) as a real process on 127.0.0.1:``port``, output
    appended to ``log``; ``KDRAN_DAPP_*`` variables of the test environment are not passed on."""
    cmd = [sys.executable, "-m", "kdran", "dapp", "serve", "--preset", "tiny",
           "--listen", f"127.0.0.1:{port}", "--state-dir", str(state), "--metrics-port", "0"]
    if seed is not None:
        cmd += ["--model", str(seed)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KDRAN_DAPP_")}
    with log.open("ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)


def start_dapp(state_dir: Path, seed: Path | None = None, uds: str = "",
               engine_config: EngineConfig | None = None, **server: Any) -> DappServer:
    """A started tiny-preset dApp on an ephemeral localhost port; ``server`` holds further
    ``ServerConfig`` fields (limits, tls, verify_keys)."""
    dapp = build_dapp(TINY, state_dir, seed, engine_config,
                      server_config=ServerConfig(listen="127.0.0.1:0", uds=uds, max_workers=24,
                                                 **server))
    dapp.start()
    return dapp


def wait_for(fn: Callable[[], T], ok: Callable[[T], bool], timeout_s: float = 10.0) -> T:
    """Poll ``fn`` until ``ok(result)``; returns the last result (asserts on timeout)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"condition not met in {timeout_s} s: {value}"
        time.sleep(0.02)
