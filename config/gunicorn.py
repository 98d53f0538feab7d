"""gunicorn's settings for the web container (Dockerfile and docker-compose.yml pass ``-c``).

The access log records the path without its query string (``%(U)s``, not the request line
``%(r)s``) and no Referer (``%(f)s``): addresses can hold identifiers, and log files are kept
longer and read more widely than the database."""

accesslog = "-"
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s" %(M)sms'
