"""WSGI entry point for gunicorn: ``gunicorn 'webmap.wsgi:app'``."""

from webmap.app import create_app

app = create_app()
