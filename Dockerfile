# One image for every app process: web (gunicorn), worker (celery worker) and beat (celery beat).
# docker-compose.yml picks the process with `command:`; the default is the web server.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=config.settings

WORKDIR /app

# Runtime dependencies only (exact pins); psycopg[binary] ships its own libpq, so no apt packages.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .

# Static files are collected at build time into var/static, which whitenoise serves. DEBUG=1 only
# for this one command so settings load without a SECRET_KEY; nothing of it stays in the image.
# Only var/ is writable by the app user (celery beat keeps its schedule file there).
RUN groupadd --system app \
    && useradd --system --gid app --home-dir /app --no-create-home app \
    && DEBUG=1 python manage.py collectstatic --noinput \
    && rm -f var/db.sqlite3 \
    && chown -R app:app var

USER app

EXPOSE 8000

# config/gunicorn.py: the access log without query strings.
CMD ["gunicorn", "config.wsgi:application", "--config", "config/gunicorn.py", "--bind", "0.0.0.0:8000", "--workers", "2"]
