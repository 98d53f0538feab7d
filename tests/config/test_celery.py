"""A real Celery worker, started from config.celery against the Redis in REDIS_URL, answers a
ping sent through the broker. No eager mode, no mocks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from config.celery import app

ROOT = Path(__file__).resolve().parent.parent.parent
PASSED_THROUGH = ("REDIS_URL", "SECRET_KEY", "DEBUG", "DATABASE_URL")


def test_worker_answers_a_ping(tmp_path: Path) -> None:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    name = f"{prefix}@{socket.gethostname()}"  # what celery makes of "%h"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(Path.home()),
        **{key: os.environ[key] for key in PASSED_THROUGH if key in os.environ},
    }
    assert app.conf.broker_url == os.environ.get("REDIS_URL", app.conf.broker_url)
    log = tmp_path / "worker.log"
    with log.open("w") as output:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool=solo",
                "--concurrency=1",
                "-n",
                f"{prefix}@%h",
                "--without-mingle",
                "--without-gossip",
                "--loglevel=INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        replies: list[dict[str, Any]] | None = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and worker.poll() is None:
            replies = app.control.ping(destination=[name], timeout=1.0)
            if replies:
                break
        assert worker.poll() is None, f"the worker exited early:\n{log.read_text()}"
        assert replies == [{name: {"ok": "pong"}}], log.read_text()
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=5)
