"""The framework's floor for ``bench/open311_bench.py``: a trivial Flask app.

It answers the same URLs as the Open311 endpoint the way a do-nothing endpoint would:
the POST reads the form (as ours does) and answers one small JSON object; the GET
answers a fixed list. No database, no validation. Served by gunicorn with the same
workers and threads as the real app, it is what the framework and server cost alone.
"""

from __future__ import annotations

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/open311/v2/requests.<fmt>")
def create_request(fmt: str):
    code = request.form.get("service_code", "")
    return jsonify([{"service_request_id": "FLOOR-1", "token": "x", "service_code": code}])


@app.get("/open311/v2/ping.<fmt>")
def ping(fmt: str):
    return jsonify({"ok": True})
