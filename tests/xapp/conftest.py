"""Fixtures of the xApp tests: real Redis (fails, not skips, when missing), a private Redis
server for restart tests, the test-double job script, a fake dApp."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from kdran.net import free_port

REDIS_URL = "redis://127.0.0.1:6379"
FAKE_JOB = Path(__file__).with_name("fake_job.py")



@pytest.fixture
def redis_url() -> str:
    """The shared Redis at 127.0.0.1:6379; a test using it fails when Redis is down."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {REDIS_URL} is required for this test: {exc}")
    return REDIS_URL


@pytest.fixture
def namespace() -> str:
    """A fresh SDL namespace per test (no clash with other runs on the shared Redis)."""
    return f"kdran-test-{uuid.uuid4().hex[:10]}"


class RedisServer:
    """A redis-server this test owns (append-only file on, so a restart keeps the data)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is required for this test")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--appendonly", "yes", "--save", ""], stdout=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        pytest.fail("private redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def job_command() -> list[str]:
    """The test-double job: a script with the ``kdran job run`` contract (see fake_job.py)."""
    return [sys.executable, str(FAKE_JOB)]
