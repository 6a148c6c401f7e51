# syntax=docker/dockerfile:1
# The worker image. Untested here (no Docker engine on the development machines): see README, Docker.
# Base pinned by version; pin its digest too for reproducible builds:
#   docker buildx imagetools inspect python:3.11.13-slim-bookworm
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from pyproject.toml and the pinned constraints.txt only: this layer is
# rebuilt when those two files change, not when the code does. EXTRAS: optional-dependency
# groups to add (the default `otel` lets OTEL_EXPORTER_OTLP_ENDPOINT turn tracing on).
ARG EXTRAS=otel
COPY pyproject.toml constraints.txt ./
RUN python -c "import os, tomllib; \
p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
extras = [e for e in os.environ.get('EXTRAS', '').split(',') if e]; \
print('\n'.join(p['dependencies'] + [d for e in extras for d in p['optional-dependencies'][e]]))" \
    > requirements.txt \
 && pip install -c constraints.txt -r requirements.txt

# The code runs from /app (the SQL files are read from /app/sql), not from site-packages.
# devtools/ (embedded stack, eval, demo) is development tooling: neither copied nor installed.
COPY schemas ./schemas
COPY sql ./sql
COPY worker ./worker

RUN useradd --system --uid 10001 --create-home --home-dir /home/worker --shell /usr/sbin/nologin worker
USER 10001

ENV HTTP_PORT=8080
EXPOSE 8080
STOPSIGNAL SIGTERM
CMD ["python", "-m", "worker", "run"]
