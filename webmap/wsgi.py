"""WSGI entry point for gunicorn: ``gunicorn -c gunicorn.conf.py 'webmap.wsgi:app'``."""

import gc

from webmap.app import create_app

app = create_app()

# The app's own objects (modules, models, compiled statements: about 300,000) live as
# long as the process. Frozen, the garbage collector no longer scans them: a full
# collection took about 95 ms, a pause for every request the worker had in hand.
gc.collect()
gc.freeze()
