"""The one settings module. Everything that differs between machines comes from the environment
(see config/env.py for the list); a misspelled or invalid value stops the process at start."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from config.env import Env

django_stubs_ext.monkeypatch()  # generic admin classes in type hints

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = Env(os.environ)

DEBUG = env.flag("DEBUG", default=False)

_secret = env.text("SECRET_KEY")
if _secret is None:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off")
    _secret = "development-only-insecure-key-never-use-in-production"  # noqa: S105
SECRET_KEY: str = _secret

ALLOWED_HOSTS = env.items("ALLOWED_HOSTS", ["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.items("CSRF_TRUSTED_ORIGINS", [])

# Transport: protected health information travels only over HTTPS. On unless DEBUG; the test
# suite turns it off (HTTPS=off in the Makefile) because its servers speak plain HTTP.
HTTPS = env.flag("HTTPS", default=not DEBUG)
SECURE_SSL_REDIRECT = HTTPS
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # the container's own plain-HTTP health check
SECURE_HSTS_SECONDS = 365 * 24 * 60 * 60 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
# A TLS-terminating proxy talks plain HTTP to gunicorn; it must set X-Forwarded-Proto (and drop
# any sent by the client), and only then may the app trust it.
if env.flag("BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Always: no script reads cookies (forms carry the CSRF token), no MIME sniffing, no framing,
# and no page address (participant ids) in the Referer sent to other sites.
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
# Strict CSP (django-csp): only our own files; no inline script or style, no eval, no plugins.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}

# Instants are stored in UTC and planned in each site's IANA zone; turning this off would store
# naive local times, which is never right for sessions that cross DST changes.
if not env.flag("USE_TZ", default=True):
    raise ImproperlyConfigured("USE_TZ must stay on: session times are stored as UTC instants")
USE_TZ = True
TIME_ZONE = "UTC"
# date-times Django renders by default (the admin) carry their zone's abbreviation
FORMAT_MODULE_PATH = ["config.formats"]
LANGUAGE_CODE = "en-us"
USE_I18N = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",  # API tokens: stored hashed, with an expiry
    "axes",  # lockout after repeated failed sign-ins
    "django_otp",
    "django_otp.plugins.otp_totp",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served locally: clinic networks may block CDNs
    "csp",
    "simple_history",
    "protocol",
    "scheduling",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # after WhiteNoise: static files keep their caching headers and need no policy
    "config.security.NoStoreMiddleware",
    "csp.middleware.CSPMiddleware",
    "config.security.RejectNulMiddleware",  # before anything reads a value
    # outside the sign-in checks: their redirects reach an htmx request as a page change
    "config.htmx.HtmxRedirectMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "config.auth.SignInMiddleware",  # absolute session end; two-factor before anything else
    "django.contrib.messages.middleware.MessageMiddleware",
    "scheduling.middleware.SiteZoneMiddleware",  # the admin shows times in the site's zone
    "simple_history.middleware.HistoryRequestMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: turns a lockout into a 429
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_database_url = env.text("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
assert _database_url is not None
try:
    _database = dj_database_url.parse(_database_url, conn_max_age=60)
except ValueError as exc:  # unknown scheme, malformed address
    raise ImproperlyConfigured(f"DATABASE_URL is invalid: {exc}") from exc
if _database["ENGINE"] not in (
    "django.db.backends.postgresql",
    "django.db.backends.sqlite3",
):
    raise ImproperlyConfigured(
        f"DATABASE_URL must be postgres:// or sqlite://, not {_database['ENGINE']}"
    )
if _database["ENGINE"] == "django.db.backends.sqlite3":
    Path(str(_database["NAME"])).parent.mkdir(parents=True, exist_ok=True)
elif env.flag("DATABASE_PREPARED_STATEMENTS", True):
    # Server-side prepared statements, for the few statements that ask for one (the reminder
    # send path, scheduling/dispatch.py: planning its join costs more than running it). Django's
    # own queries bind their values client-side and are never prepared; the threshold keeps
    # psycopg from preparing anything else on its own. Off for a connection pooler in
    # transaction mode that cannot keep prepared statements.
    _database.setdefault("OPTIONS", {})["prepare_threshold"] = 1_000_000
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.text("REDIS_URL", "redis://127.0.0.1:6379/0")
assert REDIS_URL is not None
if not REDIS_URL.startswith(("redis://", "rediss://")):
    raise ImproperlyConfigured(
        f"REDIS_URL must start with redis:// or rediss://, not {REDIS_URL!r}"
    )

# The cache holds the API's throttle counts, which every worker process must share: Redis when
# REDIS_URL is given (production, the test suite), process memory for `make run`'s demo.
if env.text("REDIS_URL") is not None:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "cache",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery: Redis is the broker. Reminders are rows claimed by one beat task, never far-future
# ETA tasks (Redis redelivers unacknowledged tasks after the visibility timeout).
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True  # no result backend: outcomes are recorded on the rows
# Acknowledged on receipt: a task lost with its worker (or with Redis) is recovered by the
# reminder's lease, within minutes; acks_late would only add a second copy of the message an
# hour later (Redis's visibility timeout), after the lease has long sent the reminder again.
CELERY_TASK_ACKS_LATE = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True  # a worker may start before Redis answers
# A worker process keeps its database connection from task to task, as a web process does from
# request to request: before each task it is closed if it broke or is older than CONN_MAX_AGE
# (config/celery.py). Celery's Django fixup would otherwise close it after every task (unless
# this many tasks have not yet passed): a new PostgreSQL connection per reminder cost more than
# the reminder itself (bench/reminders.py).
CELERY_DB_REUSE_MAX = 1_000_000

# --- reminders: the sweep and delivery (scheduling/dispatch.py, scheduling/tasks.py) -------
REMINDER_SWEEP_SECONDS = env.count("REMINDER_SWEEP_SECONDS", 60, maximum=3600)
# A claimed row whose send task never reported (worker killed, Redis flushed) is claimed again
# after this; a row being sent is locked and never claimed twice meanwhile.
REMINDER_LEASE_SECONDS = env.count("REMINDER_LEASE_SECONDS", 300, maximum=24 * 3600)
REMINDER_BATCH = env.count("REMINDER_BATCH", 500, maximum=10_000)
REMINDER_MAX_ATTEMPTS = env.count("REMINDER_MAX_ATTEMPTS", 4, maximum=20)
_retry = env.items("REMINDER_RETRY_SECONDS", ["60", "300", "900"])
if not all(re.fullmatch(r"[0-9]{1,6}", wait) and int(wait) > 0 for wait in _retry):
    raise ImproperlyConfigured(
        f"REMINDER_RETRY_SECONDS={','.join(_retry)!r} must be whole seconds, e.g. 60,300,900"
    )
#: waits before the 2nd, 3rd, ... try after a transient error (the last repeats)
REMINDER_RETRY_SECONDS = [int(wait) for wait in _retry]
# Exactly one beat runs this (docker-compose.yml). A sweep left in the queue longer than one
# interval (no worker for a while) is dropped: the next one claims the same rows.
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "sweep-reminders": {
        "task": "scheduling.tasks.sweep_reminders",
        "schedule": float(REMINDER_SWEEP_SECONDS),
        "options": {"expires": float(REMINDER_SWEEP_SECONDS)},
    },
    # CalDAV publishing (scheduling/publishing.py): pushes not done at once, or to be retried
    "sweep-calendar-pushes": {
        "task": "scheduling.tasks.sweep_calendar_pushes",
        "schedule": float(REMINDER_SWEEP_SECONDS),
        "options": {"expires": float(REMINDER_SWEEP_SECONDS)},
    },
}

# --- CalDAV publishing (scheduling/publishing.py) -------------------------------------------
# a CalDAV server that does not answer within this many seconds is tried again later
CALDAV_TIMEOUT = env.count("CALDAV_TIMEOUT", 10, maximum=120)
CALDAV_LEASE_SECONDS = env.count("CALDAV_LEASE_SECONDS", 300, maximum=24 * 3600)
CALDAV_BATCH = env.count("CALDAV_BATCH", 200, maximum=10_000)
CALDAV_MAX_ATTEMPTS = env.count("CALDAV_MAX_ATTEMPTS", 8, maximum=50)
_caldav_retry = env.items("CALDAV_RETRY_SECONDS", ["60", "300", "900", "3600"])
if not all(re.fullmatch(r"[0-9]{1,6}", wait) and int(wait) > 0 for wait in _caldav_retry):
    raise ImproperlyConfigured(
        f"CALDAV_RETRY_SECONDS={','.join(_caldav_retry)!r} must be whole seconds, e.g. 60,300"
    )
#: waits before the 2nd, 3rd, ... try after a transient failure (the last repeats)
CALDAV_RETRY_SECONDS = [int(wait) for wait in _caldav_retry]

# --- reminders: email and text messages (scheduling/channels.py) ---------------------------
# `make run` (DEBUG, no EMAIL_HOST) prints email on the console; anywhere else email goes to an
# SMTP server, localhost:25 unless EMAIL_HOST says otherwise.
_email_host = env.text("EMAIL_HOST")
if DEBUG and _email_host is None:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
else:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = _email_host or "localhost"
EMAIL_PORT = env.count("EMAIL_PORT", 25, maximum=65535)
EMAIL_HOST_USER = env.text("EMAIL_HOST_USER", "") or ""
EMAIL_HOST_PASSWORD = env.text("EMAIL_HOST_PASSWORD", "") or ""
EMAIL_USE_TLS = env.flag("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.flag("EMAIL_USE_SSL", default=False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured(
        "EMAIL_USE_TLS and EMAIL_USE_SSL are both on; choose one (TLS for 587, SSL for 465)"
    )
# a stuck server must not hold a worker: the reminder is retried instead
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env.text("DEFAULT_FROM_EMAIL", "reminders@localhost") or ""

TWILIO_ACCOUNT_SID = env.text("TWILIO_ACCOUNT_SID", "") or ""
TWILIO_AUTH_TOKEN = env.text("TWILIO_AUTH_TOKEN", "") or ""
TWILIO_FROM = env.text("TWILIO_FROM", "") or ""
# Without Twilio credentials text messages are only logged (last four digits of the number).
SMS_BACKEND = env.one_of(
    "SMS_BACKEND", "twilio" if TWILIO_ACCOUNT_SID else "console", {"CONSOLE", "TWILIO"}
).lower()
if SMS_BACKEND == "twilio" and not (TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN and TWILIO_FROM):
    raise ImproperlyConfigured(
        "SMS_BACKEND=twilio needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM"
    )
# The test suite points the Twilio client at a stub on loopback; production leaves it empty.
SMS_API_BASE_URL = env.text("SMS_API_BASE_URL", "") or ""
if SMS_API_BASE_URL and not SMS_API_BASE_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(
        f"SMS_API_BASE_URL must start with http:// or https://, not {SMS_API_BASE_URL!r}"
    )

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise expects it to exist
STATICFILES_DIRS: list[Path] = [BASE_DIR / "static"]

# The audit keeps a change's reason whole: the forms and the API accept reasons up to
# scheduling.validators.REASON_MAX_LENGTH, and simple-history's default column is 100 wide.
SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "today"
LOGOUT_REDIRECT_URL = "login"

# --- signing in (config/auth.py): lockout, passwords, sessions, two factors, API tokens ------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: a locked-out sign-in stops here
    "django.contrib.auth.backends.ModelBackend",
]
# One user name from one address: a colleague's typos at a shared front-desk computer lock
# neither the other staff there nor that user elsewhere. Counted on /login/, /admin/login/ and
# POST /api/auth/token/ alike; a success clears the count.
AXES_FAILURE_LIMIT = env.count("LOGIN_FAILURE_LIMIT", 5, maximum=100)
AXES_COOLOFF_TIME = timedelta(minutes=env.count("LOGIN_COOLOFF_MINUTES", 15, maximum=24 * 60))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "config.auth.lockout_response"
# The address failures and the token throttle count by: REMOTE_ADDR, never X-Forwarded-For as
# sent (anyone could pick a fresh address per try). Behind the TLS proxy every request comes
# from the proxy: then the last X-Forwarded-For entry, the one the proxy appended.
_BEHIND_PROXY = env.flag("BEHIND_TLS_PROXY", default=False)
if _BEHIND_PROXY:
    AXES_CLIENT_IP_CALLABLE = "config.auth.forwarded_client_address"
# No start-up banner on every command's stderr; log lines name only the (masked) lockout
# parameters, not the browser.
AXES_VERBOSE = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # not a rule: Django calls its hook after every password change
    {"NAME": "config.auth.RevokeApiTokensOnPasswordChange"},
]

# A session ends with the browser, after SESSION_IDLE_MINUTES without a request (every request
# saves the session and so pushes its end back) and SESSION_MAX_HOURS after signing in.
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_AGE = 60 * env.count("SESSION_IDLE_MINUTES", 30, maximum=24 * 60)
SESSION_SAVE_EVERY_REQUEST = True
SESSION_MAX_HOURS = env.count("SESSION_MAX_HOURS", 12, maximum=24 * 7)

# Two-factor sign-in (django-otp, TOTP) for admins, coordinators and superusers. On unless
# DEBUG, so `make run`'s demo needs no phone; production must never turn it off.
TWO_FACTOR_REQUIRED = env.flag("TWO_FACTOR_REQUIRED", default=not DEBUG)
OTP_TOTP_ISSUER = "Course scheduler"

# Where staff open the site: links in staff emails (a check-in's escalation) are absolute, and
# the host names the reminders' Message-IDs. `make run` serves http://localhost:8000.
SITE_URL = (env.text("SITE_URL") or "http://localhost:8000").rstrip("/")
_site = urlsplit(SITE_URL)
if _site.scheme not in ("http", "https") or not _site.hostname or _site.path or _site.query:
    raise ImproperlyConfigured(
        f"SITE_URL={SITE_URL!r} is not an address such as https://clinic.example.org"
    )

# Words no reminder may contain (whole words, any case; "word*" also matches its forms):
# messages reach phones' lock screens and shared inboxes, so they never name the drug, the
# diagnosis, the treatment, the study arm or the protocol. The send task refuses a participant
# message that would (a site's name, a protocol's preparation notes); a test renders them all.
REMINDER_FORBIDDEN_WORDS = [
    *("mdma", "midomafetamine", "methylenedioxy*", "ecstasy", "molly", "xtc"),
    *("psychedelic*", "entactogen*", "empathogen*", "hallucinogen*", "psilocybin", "ketamine"),
    *("ptsd", "post-traumatic", "posttraumatic", "trauma*"),
    *("dose", "doses", "dosed", "dosing", "mg", "milligram*", "drug", "drugs", "narcotic*"),
    *("placebo", "arm", "arms", "randomi*", "blinded", "unblinded", "investigational"),
    *("mapp", "maps", "lykos", "cbct"),
    *env.items("REMINDER_FORBIDDEN_WORDS", []),
]

REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=env.count("API_TOKEN_HOURS", 10, maximum=24 * 30)),
    "AUTH_HEADER_PREFIX": "Token",
}

# Token first: an unauthenticated API call then answers 401 with WWW-Authenticate: Token.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["scheduling.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "scheduling.api.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # per client address, in CACHES (shared by the workers); django-axes locks per user on top
    "DEFAULT_THROTTLE_RATES": {"token": "10/min"},
    "NUM_PROXIES": 1 if _BEHIND_PROXY else 0,  # see AXES_CLIENT_IP_CALLABLE
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Protocol scheduler API",
    "DESCRIPTION": (
        "Sites, rooms, staff, dyads, protocols, participants and their scheduled sessions. "
        "Every object belongs to a site: objects of sites you do not work at answer 404."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # no badge from validator.swagger.io: it would send our schema's address off-site
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "REDOC_DIST": "SIDECAR",
    # several models have a "status": give each set of choices its own name
    "ENUM_NAME_OVERRIDES": {
        "ParticipantStatusEnum": "scheduling.models.Participant.Status",
        "CourseStatusEnum": "scheduling.models.Course.Status",
        "SessionStatusEnum": "scheduling.models.ScheduledSession.Status",
        "SessionStatusChangeEnum": "scheduling.api.STATUS_CHANGES",
        "ProtocolStatusEnum": ["draft", "active", "retired"],
        "CheckInOutcomeEnum": "scheduling.models.CheckInOutcome.Outcome",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "strip_query_strings": {"()": "config.security.StripQueryStrings"},
        # a calendar feed's address holds its secret token
        "redact_feed_tokens": {"()": "config.security.RedactFeedTokens"},
    },
    "formatters": {
        "django.server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["redact_feed_tokens"]},
        "django.server": {
            "class": "logging.StreamHandler",
            "formatter": "django.server",
            "filters": ["redact_feed_tokens"],
        },
    },
    "root": {"handlers": ["console"], "level": env.log_level()},
    # runserver's access log, as Django sets it up, minus query strings (search terms, ids)
    "loggers": {
        "django.server": {
            "handlers": ["django.server"],
            "filters": ["strip_query_strings", "redact_feed_tokens"],
            "level": "INFO",
            "propagate": False,
        },
        # "Not Found: <path>" for every 4xx answer, a revoked feed's address included
        "django.request": {"filters": ["redact_feed_tokens"]},
        # nine INFO lines per text message (addresses and headers, never the body): noise
        "twilio.http_client": {"level": "WARNING"},
        # the CalDAV client at DEBUG dumps requests: never the publishing account's credentials
        "caldav": {"level": "WARNING"},
        "niquests": {"level": "WARNING"},
        "urllib3_future": {"level": "WARNING"},
    },
}
