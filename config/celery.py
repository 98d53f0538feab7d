"""The Celery app. Workers and the single beat process start from here:
``celery -A config worker`` and ``celery -A config beat``."""

import os
from typing import Any

from celery import Celery
from celery.signals import task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def _renew_database_connections(*, task: Any = None, **kwargs: Any) -> None:
    """Before each task, what Django does before each request: close a connection that is
    broken (the database restarted) or older than CONN_MAX_AGE, so that the task opens a fresh
    one; keep a healthy one. Celery's own closing after every task is switched off by
    CELERY_DB_REUSE_MAX (config/settings.py)."""
    if task is not None and getattr(task.request, "is_eager", False):
        return  # run inline by the caller, inside the caller's transaction
    from django.db import close_old_connections

    close_old_connections()
