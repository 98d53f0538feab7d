"""A real CalDAV server on loopback for the publishing tests: Radicale, run as its own process
(``python -m radicale``) with a throw-away configuration, storage and htpasswd file, bound to
127.0.0.1 on a free port. One user, one calendar collection made with MKCALENDAR.

    with RadicaleServer(tmp_path) as server:
        server.collection_url  # http://127.0.0.1:<port>/<user>/<calendar>/
        server.stop()          # down (connection refused) ...
        server.start()         # ... and up again on the same port, with the same storage
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Self

import niquests
from caldav.collection import Calendar
from caldav.davclient import DAVClient

from tests.servers import free_port

USER = "clinic"
PASSWORD = "radicale-test-only"  # noqa: S105
CALENDAR = "sessions"


class RadicaleServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = root / "radicale.log"
        users = root / "users"
        users.write_text(f"{USER}:{PASSWORD}\n")
        (root / "collections").mkdir(exist_ok=True)
        self.config = root / "radicale.conf"
        self.config.write_text(
            "[server]\n"
            f"hosts = 127.0.0.1:{self.port}\n"
            "[auth]\n"
            "type = htpasswd\n"
            f"htpasswd_filename = {users}\n"
            "htpasswd_encryption = plain\n"
            "delay = 0\n"
            "[rights]\n"
            "type = owner_only\n"
            "[storage]\n"
            f"filesystem_folder = {root / 'collections'}\n"
            "[logging]\n"
            "level = warning\n"
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def collection_url(self) -> str:
        return f"{self.base_url}/{USER}/{CALENDAR}/"

    def start(self) -> None:
        with self.log.open("a") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "radicale", "--config", str(self.config)],
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"radicale exited:\n{self.log.read_text()}")
            try:
                niquests.get(self.base_url + "/.web/", timeout=1)
                return
            except niquests.exceptions.RequestException:
                time.sleep(0.1)
        raise AssertionError(f"radicale did not answer:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def client(self, password: str = PASSWORD) -> DAVClient:
        return DAVClient(
            url=self.base_url + "/",
            username=USER,
            password=password,
            require_tls=False,
            enable_rfc6764=False,
            timeout=5,
        )

    def make_collection(self) -> Calendar:
        """The calendar the clinic publishes to, made once (MKCALENDAR)."""
        calendar: Calendar = (
            self.client().principal().make_calendar(name="Sessions", cal_id=CALENDAR)
        )
        assert str(calendar.url) == self.collection_url, calendar.url
        return calendar

    def calendar(self) -> Calendar:
        return Calendar(client=self.client(), url=self.collection_url)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
