"""Benchmark: reminders delivered per second by one real Celery worker, against a no-op Celery
task through the same worker and the same broker, measured in the same run.

Data: a scratch PostgreSQL database (test_bench_reminders, on the server DATABASE_URL names;
created with Django's test-database utilities, dropped at the end; no other database is
touched) with `seed_demo`'s clinic. Its participants get an email address and consent, the
site no quiet hours (the bench may run at any hour), and REMINDERS reminder rows are written
due at once, spread over the participants' next open sessions, as the planner writes them.

The worker: one `celery -A config worker` (prefork, 8 processes, DEBUG off, INFO logs, as
docker-compose.yml runs it; --concurrency changes it) on the Redis in REDIS_URL (default
redis://127.0.0.1:6379/11: a database of its own, whose queue the bench purges), sending to a
real SMTP server (aiosmtpd) in this process that keeps every message it accepts.

Measured, each after a warm-up of 100 of its kind:
  noop       REMINDERS no-op tasks published through one producer connection, from the first
             publish until the worker reports them all done (its `stats` total);
  reminders  one sweep_reminders task (what the beat sends each minute) claims them all and
             enqueues one send_reminder each; from that publish until every row is sent.
Then duplicates = messages the SMTP server received beyond the distinct Message-IDs, and
lost = reminders whose Message-ID never arrived. Also printed: the worker's CPU time (main
process and pool, from /proc) per no-op task and per reminder, which other load on the machine
does not change the way it changes the rates.

Prints as its last line `RESULT reminders_per_s=<float> noop_tasks_per_s=<float>
ratio=<reminders/noop> duplicates=<int> lost=<int>`; the target is ratio >= 0.5, no duplicates,
nothing lost. Run: `make bench` or `python bench/reminders.py [--reminders N]
[--concurrency N]` (about a minute).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import time as clock
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_reminders")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/11")
os.environ.setdefault("DEBUG", "0")  # as production runs the worker
os.environ.setdefault("SECRET_KEY", "bench-only-not-secret")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.utils import timezone  # noqa: E402

from config.celery import app  # noqa: E402
from scheduling import messages, tasks  # noqa: E402
from scheduling.models import Participant, Reminder, ScheduledSession, Site  # noqa: E402
from tests.servers import SmtpServer, worker_environment  # noqa: E402

TEST_DATABASE = "test_bench_reminders"
REMINDERS = 5000
WARM_UP = 100
CONCURRENCY = 8  # as docker-compose.yml runs the worker: its tasks wait on I/O
TIMEOUT = 600.0


def prepare() -> list[tuple[Participant, ScheduledSession]]:
    """seed_demo's clinic; its participants reachable by email, each with a session ahead."""
    call_command("load_protocols", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())
    Site.objects.update(quiet_hours_start=clock(0), quiet_hours_end=clock(0))  # none
    now = timezone.now()
    # seed_demo's own rows due now (the staff's calendar invitations): out of the way, so that
    # the worker sends only what the bench times
    Reminder.objects.filter(status="pending", due_at__lte=now).update(
        status="cancelled", reason="Not part of the benchmark."
    )
    targets = []
    for participant in Participant.objects.exclude(status="withdrawn").order_by("pk"):
        participant.email = f"{participant.code.lower()}@example.org"
        participant.email_consent_at = now - timedelta(days=30)
        participant.save(update_fields=["email", "email_consent_at"])
        session = (
            ScheduledSession.objects.filter(
                course__participant=participant,
                superseded=False,
                status__in=["planned", "confirmed"],
                start__gt=now + timedelta(days=1),
            )
            .order_by("start")
            .first()
        )
        if session is not None:
            targets.append((participant, session))
    if not targets:
        raise SystemExit("seed_demo made no participant with a session ahead")
    return targets


def add_due(targets: list[tuple[Participant, ScheduledSession]], count: int) -> list[Reminder]:
    """``count`` rows due now, round-robin over the participants (idempotency keys as the
    planner writes them, one rule key per row)."""
    now = timezone.now()
    batch = uuid.uuid4().hex[:8]
    rows = []
    for n in range(count):
        participant, session = targets[n % len(targets)]
        rows.append(
            Reminder(
                site=participant.site,
                session=session,
                participant=participant,
                rule_key=f"bench{n}",
                message="upcoming",
                channel="email",
                due_at=now - timedelta(seconds=1),
                session_start=session.start,
                idempotency_key=f"{session.uid}/bench-{batch}-{n}/p{participant.pk}/email/x",
            )
        )
    return Reminder.objects.bulk_create(rows, batch_size=1000)


def start_worker(smtp: SmtpServer, concurrency: int, log: Path) -> tuple[Any, str]:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    url = f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(Path.home()),
        "DATABASE_URL": url,
        "REDIS_URL": str(settings.REDIS_URL),
        "SECRET_KEY": settings.SECRET_KEY,
        "DEBUG": "0",
        "LOG_LEVEL": "INFO",
        "DEFAULT_FROM_EMAIL": settings.DEFAULT_FROM_EMAIL,
        **worker_environment(smtp, None),
    }
    with log.open("w") as output:
        worker = subprocess.Popen(  # noqa: S603 - our own celery, arguments fixed here
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool=prefork",
                f"--concurrency={concurrency}",
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
            start_new_session=True,
        )
    name = f"{prefix}@{socket.gethostname()}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and worker.poll() is None:
        if app.control.ping(destination=[name], timeout=0.5):
            return worker, name
    raise SystemExit(f"the worker did not start:\n{log.read_text()[-3000:]}")


def wait(condition: Callable[[], bool], what: str, poll: float = 0.05) -> float:
    """Seconds (monotonic clock) at which ``condition`` first held."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting until {what}")
        time.sleep(poll)
    return time.monotonic()


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(master: int) -> float:
    """User + system CPU of the worker: its main process and its pool's children so far."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    total = 0
    for pid in [master, *map(int, children)]:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def noops_done(name: str) -> int:
    replies: dict[str, Any] = app.control.inspect(destination=[name], timeout=1.0).stats() or {}
    total: dict[str, int] = replies.get(name, {}).get("total", {})
    return total.get(tasks.noop.name, 0)


def run_noops(name: str, count: int) -> float:
    """Seconds from the first publish of ``count`` no-op tasks until the worker ran them."""
    before = noops_done(name)
    began = time.monotonic()
    with app.producer_or_acquire() as producer:
        for _ in range(count):
            tasks.noop.apply_async(producer=producer)
    return wait(lambda: noops_done(name) >= before + count, "the no-ops are done") - began


def run_reminders(rows: list[Reminder]) -> float:
    """Seconds from the sweep's publish until every row is sent."""
    ids = [row.pk for row in rows]
    # by the range of their ids (nothing else writes reminders meanwhile): a poll with five
    # thousand ids in it would cost the database more than what it watches
    unsent = Reminder.objects.filter(pk__gte=min(ids), pk__lte=max(ids)).exclude(status="sent")
    began = time.monotonic()
    tasks.sweep_reminders.delay()
    return wait(lambda: not unsent.exists(), "the reminders are sent", poll=0.1) - began


def run(count: int, concurrency: int) -> None:
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd: a line per command
    targets = prepare()
    warm_rows = add_due(targets, WARM_UP)
    app.control.purge()
    log = Path(settings.VAR_DIR) / "bench-reminders-worker.log"
    with SmtpServer() as smtp:
        worker, name = start_worker(smtp, concurrency, log)
        try:
            run_noops(name, WARM_UP)
            run_reminders(warm_rows)
            smtp.reset()
            cpu = cpu_seconds(worker.pid)
            noop_seconds = run_noops(name, count)
            noop_cpu, cpu = cpu_seconds(worker.pid) - cpu, cpu_seconds(worker.pid)
            rows = add_due(targets, count)
            reminder_seconds = run_reminders(rows)
            reminder_cpu = cpu_seconds(worker.pid) - cpu
            time.sleep(2)  # anything sent twice arrives meanwhile
            received = Counter(message.message_id for message in smtp.received)
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=60)
    expected = {messages.message_id(row) for row in rows}
    duplicates = sum(received.values()) - len(received)
    lost = len(expected - received.keys())
    reminders_per_s = count / reminder_seconds
    noops_per_s = count / noop_seconds
    print(f"{count} no-op tasks in {noop_seconds:.2f} s: {noops_per_s:.0f}/s")
    print(f"{count} reminders in {reminder_seconds:.2f} s: {reminders_per_s:.0f}/s")
    print(
        f"worker CPU (main process and pool): {noop_cpu * 1000 / count:.2f} ms per no-op task, "
        f"{reminder_cpu * 1000 / count:.2f} ms per reminder"
    )
    print(f"worker: prefork, concurrency {concurrency}; its log: {log}")
    print(
        f"RESULT reminders_per_s={reminders_per_s:.1f} noop_tasks_per_s={noops_per_s:.1f} "
        f"ratio={reminders_per_s / noops_per_s:.2f} duplicates={duplicates} lost={lost}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reminders", type=int, default=REMINDERS)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("bench/reminders.py measures PostgreSQL: set DATABASE_URL to postgres://...")
    old_name = connection.settings_dict["NAME"]
    connection.settings_dict["TEST"]["NAME"] = TEST_DATABASE  # never another bench's database
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        run(args.reminders, args.concurrency)
    finally:
        connections.close_all()
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
