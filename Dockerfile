# civicpin production image: the app under gunicorn, plus the worker and mail intake
# (same image, other commands; see docker-compose.yml). The map assets are fetched from npm
# in a build stage and served by the app itself: no CDN at run time.

# ---- map assets (Leaflet and plugins) ------------------------------------------------
FROM python:3.11-slim-bookworm AS assets
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY scripts/copy-assets.sh scripts/
RUN sh scripts/copy-assets.sh

# ---- the app ----------------------------------------------------------------------------
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MEDIA_DIR=/data/media \
    VAR_DIR=/data/var
RUN useradd --system --create-home --home-dir /home/civicpin --uid 10001 civicpin \
    && mkdir -p /data/media /data/var \
    && chown -R civicpin:civicpin /data
WORKDIR /app
COPY . .
COPY --from=assets /src/webmap/static/vendor webmap/static/vendor
# Editable install: migrations/ and the demo data stay next to the packages, where the
# code finds them (PROJECT_ROOT is /app).
RUN pip install -e . && civicpin --version
USER civicpin
EXPOSE 8000 2525
CMD ["gunicorn", "-c", "gunicorn.conf.py", "-b", "0.0.0.0:8000", "--access-logfile", "-", "webmap.wsgi:app"]
