"""gunicorn's settings for `make web`. gunicorn reads ./gunicorn.conf.py by itself, so every
`gunicorn config.wsgi …` started from here (the benches too) runs this way; flags win.

Threaded workers (gthread): a connection is served by one of a worker's threads, so a slow
client — headers or a body dribbled a byte at a time — holds one thread, not a whole worker,
and the other threads keep answering. WEB_CONCURRENCY x WEB_THREADS slow connections can be
open before others wait; a buffering proxy in front (README, "Production shape") takes
them all. Idle keep-alive connections wait in the worker's poller, not in a thread, and are
closed after WEB_KEEPALIVE_SECONDS. The choice against sync workers, uvicorn, gunicorn's ASGI
worker and waitress, measured: docs/PERFORMANCE.md ("Web server").
"""

import os

worker_class = "gthread"
# One worker process per core: on 2 cores 4 workers x 32 threads gave the same requests/s as
# 2 x 32 but a p99 of 1.0-1.3 s against 0.4 s (processes descheduled mid-request;
# docs/PERFORMANCE.md, "gunicorn's shape").
workers = int(os.environ.get("WEB_CONCURRENCY", str(os.cpu_count() or 2)))
# Threads wait in the database pool (DATABASE_POOL_MAX_SIZE per process) when more of them
# need PostgreSQL at once; a slow client holds a thread but no connection.
threads = int(os.environ.get("WEB_THREADS", "32"))
keepalive = int(os.environ.get("WEB_KEEPALIVE_SECONDS", "5"))
# A worker that stops answering its arbiter this long (stuck, not merely busy: the threads'
# poller keeps beating) is killed and replaced.
timeout = int(os.environ.get("WEB_TIMEOUT_SECONDS", "30"))
graceful_timeout = 30
