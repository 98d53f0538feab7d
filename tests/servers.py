"""Real servers on loopback for the reminder channels: an SMTP server (aiosmtpd) and a stand-in
for the SMS provider's HTTP API (the one outside party we may imitate). Plain classes with
start()/stop(), usable from pytest fixtures (tests/conftest.py) and from bench/ scripts alike.

    with SmtpServer() as smtp, SmsProviderStub() as sms:
        env = {**os.environ, **worker_environment(smtp, sms)}  # for a celery worker process
"""

from __future__ import annotations

import base64
import email
import email.parser
import email.policy
import functools
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Self, TypeVar
from urllib.parse import parse_qs

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

TWILIO_TEST_SID = "AC" + "0" * 32
TWILIO_TEST_TOKEN = "test-token-not-secret"  # noqa: S105
TWILIO_TEST_FROM = "+15005550006"


def free_port() -> int:
    """A TCP port nobody listens on at this moment (a server down, or one about to start)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- SMTP ----------------------------------------------------------------------------------


class ReceivedEmail:
    """One accepted message: its envelope and its bytes. Headers and body are parsed when a
    test asks for them, so that receiving thousands of messages (bench/reminders.py) costs
    the server, which shares the machine with the worker it measures, next to nothing."""

    def __init__(self, sender: str, recipients: list[str], raw: bytes) -> None:
        self.sender = sender
        self.recipients = recipients
        self.raw = raw

    @functools.cached_property
    def message_id(self) -> str:
        headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(self.raw)
        return str(headers.get("Message-ID", "")).strip()

    @functools.cached_property
    def _parsed(self) -> Any:
        return email.message_from_bytes(self.raw, policy=email.policy.default)

    @property
    def subject(self) -> str:
        return str(self._parsed.get("Subject", ""))

    @property
    def text(self) -> str | None:
        part = self._parsed.get_body(("plain",))
        return None if part is None else str(part.get_content())

    @property
    def html(self) -> str | None:
        part = self._parsed.get_body(("html",))
        return None if part is None else str(part.get_content())


class _Handler:
    """aiosmtpd calls these from its own thread; the counts are read from the tests' thread."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        with self.server.lock:
            if address.lower() in self.server.refused_recipients:
                self.server.refusals += 1
                return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.server.lock:
            if self.server.temporary_refusals_left > 0:
                self.server.temporary_refusals_left -= 1
                self.server.refusals += 1
                return "451 4.3.0 Try again later"
        received = ReceivedEmail(
            str(envelope.mail_from), list(envelope.rcpt_tos), envelope.original_content or b""
        )
        with self.server.lock:
            self.server._received.append(received)
        return "250 Message accepted for delivery"


T = TypeVar("T")


class _Inbox(Generic[T]):
    """What a stand-in server received, read from the tests' thread while it keeps arriving on
    the server's."""

    lock: threading.Lock
    _received: list[T]

    @property
    def received(self) -> list[T]:
        with self.lock:
            return list(self._received)

    @property
    def count(self) -> int:
        with self.lock:
            return len(self._received)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[T]:
        """Messages once at least ``count`` have arrived (a worker sends them meanwhile)."""
        deadline = time.monotonic() + timeout
        while self.count < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.received


class SmtpServer(_Inbox[ReceivedEmail]):
    """An SMTP server on 127.0.0.1 that keeps what it accepts. Modes: ``refuse_next(n)``
    answers 451 to the next n messages; ``refuse_recipient(address)`` answers 550 to that
    address for good."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.lock = threading.Lock()
        self._received: list[ReceivedEmail] = []
        self.refused_recipients: set[str] = set()
        self.temporary_refusals_left = 0
        self.refusals = 0
        self._controller: Controller | None = None

    def start(self) -> Self:
        for _ in range(5):  # free_port() races with other processes: take another one
            self.port = free_port()
            controller = Controller(_Handler(self), hostname=self.host, port=self.port)
            try:
                controller.start()
            except (OSError, RuntimeError):
                continue
            self._controller = controller
            return self
        raise RuntimeError("no free port for the test SMTP server")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def refuse_next(self, count: int) -> None:
        with self.lock:
            self.temporary_refusals_left = count

    def refuse_recipient(self, address: str) -> None:
        with self.lock:
            self.refused_recipients.add(address.lower())

    def reset(self) -> None:
        with self.lock:
            self._received.clear()
            self.refused_recipients.clear()
            self.temporary_refusals_left = 0
            self.refusals = 0


# --- the SMS provider ----------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedSms:
    sid: str
    account_sid: str
    to: str
    from_: str
    body: str
    auth_user: str


class _TwilioHandler(BaseHTTPRequestHandler):
    server: _StubHttpServer

    def do_POST(self) -> None:
        stub = self.server.stub
        parts = self.path.strip("/").split("/")
        # 2010-04-01 / Accounts / {sid} / Messages.json
        if len(parts) != 4 or parts[:2] != ["2010-04-01", "Accounts"]:
            self._answer(404, {"code": 20404, "message": "The requested resource was not found"})
            return
        account_sid = parts[2]
        user, password = self._basic_credentials()
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        status, delay = stub._next_call(form.get("To", ""))
        if delay:
            time.sleep(delay)
        if (user, password) != (account_sid, stub.auth_token):
            self._answer(401, {"code": 20003, "message": "Authenticate", "status": 401})
        elif status == 400:
            to = form.get("To", "")
            code = stub.refused_numbers.get(to, 21211)
            self._answer(
                400, {"code": code, "message": f"The 'To' number {to} is not valid.", "status": 400}
            )
        elif status != 201:
            self._answer(status, {"code": status, "message": "Try again later"})
        else:
            sid = "SM" + uuid.uuid4().hex
            sms = ReceivedSms(
                sid=sid,
                account_sid=account_sid,
                to=form.get("To", ""),
                from_=form.get("From", ""),
                body=form.get("Body", ""),
                auth_user=user,
            )
            stub._record(sms)
            self._answer(
                201,
                {
                    "sid": sid,
                    "account_sid": account_sid,
                    "to": sms.to,
                    "from": sms.from_,
                    "body": sms.body,
                    "status": "queued",
                    "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json",
                },
            )

    def _basic_credentials(self) -> tuple[str, str]:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return "", ""
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user, password

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up waiting (the slow mode)
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet test output


class _StubHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    stub: SmsProviderStub

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up on a slow answer is expected


class SmsProviderStub(_Inbox[ReceivedSms]):
    """Enough of Twilio's Messages API on 127.0.0.1 (POST /2010-04-01/Accounts/{sid}/
    Messages.json). Modes: ``refuse_number(to, code)`` answers 400 with that Twilio code;
    ``fail_next(n, status=503)``; ``slow_next(n, seconds)`` answers late (and still accepts,
    as a provider does when only the answer is late)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._received: list[ReceivedSms] = []
        self.refused_numbers: dict[str, int] = {}
        self.failures_left = 0
        self.failure_status = 503
        self.slow_left = 0
        self.slow_seconds = 0.0
        self.calls = 0
        self.auth_token = TWILIO_TEST_TOKEN  # any other answers 401, as Twilio does
        self._http: _StubHttpServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        self._http = _StubHttpServer(("127.0.0.1", 0), _TwilioHandler)
        self._http.stub = self
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._http is not None, "start() the stub first"
        port: int = self._http.server_address[1]
        return port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def refuse_number(self, to: str, code: int = 21211) -> None:
        with self.lock:
            self.refused_numbers[to] = code

    def fail_next(self, count: int, status: int = 503) -> None:
        with self.lock:
            self.failures_left, self.failure_status = count, status

    def slow_next(self, count: int, seconds: float) -> None:
        with self.lock:
            self.slow_left, self.slow_seconds = count, seconds

    def reset(self) -> None:
        with self.lock:
            self._received.clear()
            self.refused_numbers.clear()
            self.failures_left = self.slow_left = self.calls = 0

    def _next_call(self, to: str) -> tuple[int, float]:
        """(status to answer, seconds to wait first) for the next call."""
        with self.lock:
            self.calls += 1
            delay = 0.0
            if self.slow_left > 0:
                self.slow_left -= 1
                delay = self.slow_seconds
            if self.failures_left > 0:
                self.failures_left -= 1
                return self.failure_status, delay
            if to in self.refused_numbers:
                return 400, delay
            return 201, delay

    def _record(self, sms: ReceivedSms) -> None:
        with self.lock:
            self._received.append(sms)


def channel_settings(smtp: SmtpServer | None, sms: SmsProviderStub | None) -> dict[str, Any]:
    """Django settings that send through these servers (for ``settings`` / override_settings)."""
    values: dict[str, Any] = {}
    if smtp is not None:
        values |= {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": smtp.host,
            "EMAIL_PORT": smtp.port,
            "EMAIL_HOST_USER": "",
            "EMAIL_HOST_PASSWORD": "",
            "EMAIL_USE_TLS": False,
            "EMAIL_USE_SSL": False,
            "EMAIL_TIMEOUT": 5,
        }
    if sms is not None:
        values |= {
            "SMS_BACKEND": "twilio",
            "TWILIO_ACCOUNT_SID": TWILIO_TEST_SID,
            "TWILIO_AUTH_TOKEN": TWILIO_TEST_TOKEN,
            "TWILIO_FROM": TWILIO_TEST_FROM,
            "SMS_API_BASE_URL": sms.base_url,
        }
    return values


def worker_environment(smtp: SmtpServer | None, sms: SmsProviderStub | None) -> dict[str, str]:
    """Environment variables that point another process (a celery worker) at these servers."""
    values: dict[str, str] = {}
    if smtp is not None:
        values |= {"EMAIL_HOST": smtp.host, "EMAIL_PORT": str(smtp.port)}
    if sms is not None:
        values |= {
            "SMS_BACKEND": "twilio",
            "TWILIO_ACCOUNT_SID": TWILIO_TEST_SID,
            "TWILIO_AUTH_TOKEN": TWILIO_TEST_TOKEN,
            "TWILIO_FROM": TWILIO_TEST_FROM,
            "SMS_API_BASE_URL": sms.base_url,
        }
    return values
