"""gunicorn settings for civicpin in production (Dockerfile, docker-compose.yml) and in
the Open311 benchmark (bench/open311_bench.py, which serves its trivial Flask floor with
the same settings).

The app is CPU-bound Python between short database round trips, so it scales with
processes, not threads: a process runs Python on one core at a time (the GIL), and its
threads mostly wait for each other. Measured on two cores (bench/README.md, "Open311"):
2 workers x 4 threads sustained 264 POSTs/s at 7.0 ms of CPU each, 4 x 2 335/s at
6.0 ms. Two threads per worker still overlap one request's database waits with another's
Python. Keep-alive connections stay with the worker that accepted them, so with few
workers an unlucky spread of clients leaves one worker saturated while the other idles.

``WEB_CONCURRENCY`` (gunicorn's own variable) sets the number of workers,
``GUNICORN_THREADS`` the threads of each; options on the command line override both.
"""

import os

workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * (os.cpu_count() or 1))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS") or 2)
keepalive = 30
# The access log names the path only: query strings carry residents' private tokens
# (/requests/<id>?token=...), and so may the Referer, which is left out. Otherwise
# gunicorn's default line (client, time, request, status, size, user agent).
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s"'
