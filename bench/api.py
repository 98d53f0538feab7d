"""Benchmark: server CPU per request of the REST API's main lists (a page of 50) and of the
Today page, against a bare DRF view with the same authentication and permission classes,
measured in the same run under concurrency.

Data: a scratch PostgreSQL database (test_bench_api, on the server DATABASE_URL names; created
with Django's test-database utilities, dropped at the end; no other database is touched) with
`seed_demo`'s clinic, the capacity bench/pages.py adds to it, and 300 more mapp-ptsd
participants enrolled through the services (starts from 20 weeks ago to 30 weeks ahead; past
sessions marked completed, then ANALYZE), as bench/pages.py does.

Serving: gunicorn with 2 sync workers (this machine has 2 cores) on loopback, DEBUG off, with
bench/api_settings.py: the product's settings plus a urlconf (bench/api_urls.py) that adds
/bench/bare/, a DRF view that only authenticates, checks IsAuthenticated and answers a
constant. The bare view is never among the product's routes.

Load: 50 client threads in this process, each taking the next request from a shared count, for
REQUESTS requests per endpoint after a warm-up; API requests carry a knox token (as API clients
do), the Today page a session cookie of seed_demo's coordinator (force_login). Measured: the
CPU time (user + system) the gunicorn workers spent, read from /proc/<pid>/stat before and
after each endpoint's requests, divided by the number of requests: the application server's
CPU per request (PostgreSQL's own CPU is not in it). Every response must be 200.

Endpoints: /api/participants/, /api/sessions/, /api/rooms/, /api/staff/, /api/dyads/ and one
participant's /api/participants/<id>/sessions/ (default page: 50), /today/?site=demo, and
/bench/bare/.

Prints as its last line `RESULT api_cpu_ms=<mean of the six API lists> bare_cpu_ms=<float>
ratio=<api/bare> errors=<int> today_cpu_ms=<float> today_ratio=<float> max_api_cpu_ms=<float>
max_ratio=<float>`; the target is ratio <= 5 and no errors.
Run: `make bench` or `python bench/api.py [--participants N] [--requests N]` (about 3 minutes).
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_api")
os.environ.setdefault("DEBUG", "0")  # as production serves it
os.environ.setdefault("SECRET_KEY", "bench-only-not-secret")
os.environ.setdefault("HTTPS", "off")  # gunicorn on loopback speaks plain HTTP
os.environ.setdefault("TWO_FACTOR_REQUIRED", "off")  # the bench signs in with force_login

import django  # noqa: E402

django.setup()

import pages as pages_bench  # noqa: E402  (bench/pages.py: capacity and enrolment)
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

TEST_DATABASE = "test_bench_api"
SITE = "demo"
COORDINATOR = "demo-coordinator"
THREADS = 50
WORKERS = 2
PORT = 8765
TICKS = os.sysconf("SC_CLK_TCK")


def worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of the processes, from /proc/<pid>/stat (fields 14 and 15)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def hammer(url: str, headers: dict[str, str], requests: int) -> int:
    """``requests`` GETs of ``url`` from THREADS threads; returns how many failed."""
    lock = threading.Lock()
    left = [requests]
    errors = [0]

    def client() -> None:
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            try:
                conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=120)
                conn.request("GET", url, headers=headers)
                response = conn.getresponse()
                response.read()
                conn.close()
                failed = response.status != 200
            except OSError:
                failed = True
            if failed:
                with lock:
                    errors[0] += 1

    threads = [threading.Thread(target=client) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors[0]


def measure(
    master: int, name: str, url: str, headers: dict[str, str], requests: int
) -> tuple[float, int]:
    """Worker CPU milliseconds per request of ``url``, and the failed requests."""
    errors = hammer(url, headers, 4 * WORKERS)  # warm-up: every worker, every cache
    pids = worker_pids(master)
    before, began = cpu_seconds(pids), time.perf_counter()
    errors += hammer(url, headers, requests)
    spent, elapsed = cpu_seconds(pids) - before, time.perf_counter() - began
    per_request = spent * 1000 / requests
    print(
        f"{name:22} {url:40} {per_request:7.2f} ms CPU per request, "
        f"{requests / elapsed:6.1f} requests/s, {errors} errors"
    )
    return per_request, errors


def build(count: int) -> dict[str, Any]:
    """seed_demo, more capacity and ``count`` participants; returns what the requests need."""
    from django.contrib.auth.models import User
    from knox.models import AuthToken

    from scheduling.models import Participant, Site

    call_command("load_protocols", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())
    site = Site.objects.get(slug=SITE)
    pages_bench.add_capacity(site)
    today = timezone.now().astimezone(ZoneInfo(site.timezone)).date()
    enrolled, refused, _ = pages_bench.enrol(site, count, today)
    print(f"{enrolled} of {count} participants enrolled ({len(refused)} refused)")
    print(f"{pages_bench.complete_past_sessions()} past sessions marked completed")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    coordinator = User.objects.get(username=COORDINATOR)
    _, token = AuthToken.objects.create(coordinator)
    browser = Client()
    browser.force_login(coordinator)
    participant = Participant.objects.filter(site=site, code__startswith="P-").order_by("pk")
    name = settings.SESSION_COOKIE_NAME
    return {
        "token": token,
        "cookie": f"{name}={browser.cookies[name].value}",
        "participant": participant[count // 2].pk,
        "enrolled": enrolled,
    }


def serve(database_name: str) -> subprocess.Popen[bytes]:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    url = f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{database_name}"
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "api_settings"}
    server = subprocess.Popen(  # noqa: S603 - our own gunicorn, arguments fixed here
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "config.wsgi:application",
            f"--bind=127.0.0.1:{PORT}",
            f"--workers={WORKERS}",
            "--worker-class=sync",
            "--backlog=256",
            "--timeout=120",
            f"--pythonpath={ROOT / 'bench'}",
            f"--chdir={ROOT}",
            "--log-level=warning",
        ],
        env=env,
    )
    for _ in range(200):
        time.sleep(0.1)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=5)
            conn.request("GET", "/bench/bare/")
            status = conn.getresponse().status
            conn.close()
        except OSError:
            continue
        if status == 401 and len(worker_pids(server.pid)) == WORKERS:
            return server
    server.terminate()
    raise SystemExit("gunicorn did not come up")


def run(count: int, requests: int) -> None:
    data = build(count)
    connections.close_all()  # the workers have the database to themselves
    server = serve(connection.settings_dict["NAME"])
    try:
        api = {"Authorization": f"Token {data['token']}"}
        browser = {"Cookie": data["cookie"]}
        bare_ms, errors = measure(server.pid, "bare DRF view", "/bench/bare/", api, requests)
        lists = {
            "participants": "/api/participants/",
            "sessions": "/api/sessions/",
            "rooms": "/api/rooms/",
            "staff": "/api/staff/",
            "dyads": "/api/dyads/",
            "participant sessions": f"/api/participants/{data['participant']}/sessions/",
        }
        api_ms: list[float] = []
        for name, url in lists.items():
            spent, failed = measure(server.pid, name, url, api, requests)
            api_ms.append(spent)
            errors += failed
        today_ms, failed = measure(
            server.pid, "Today page", f"/today/?site={SITE}", browser, requests
        )
        errors += failed
        again, failed = measure(server.pid, "bare DRF view (again)", "/bench/bare/", api, requests)
        errors += failed
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    bare = (bare_ms + again) / 2
    mean = sum(api_ms) / len(api_ms)
    print(
        f"RESULT api_cpu_ms={mean:.2f} bare_cpu_ms={bare:.2f} ratio={mean / bare:.2f} "
        f"errors={errors} today_cpu_ms={today_ms:.2f} today_ratio={today_ms / bare:.2f} "
        f"max_api_cpu_ms={max(api_ms):.2f} max_ratio={max(api_ms) / bare:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--participants", type=int, default=300)
    parser.add_argument("--requests", type=int, default=300, help="measured requests per URL")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("bench/api.py measures PostgreSQL: set DATABASE_URL to postgres://...")
    old_name = connection.settings_dict["NAME"]
    connection.settings_dict["TEST"]["NAME"] = TEST_DATABASE  # never another bench's database
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        run(args.participants, args.requests)
    finally:
        connections.close_all()
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
