# rls-cds production image: gunicorn (rls-cds serve --prod) serving create_app() as a non-root user.
#   docker build -t rls-cds .
#   docker run --rm -p 8080:8080 rls-cds rls-cds serve --prod --demo --host 0.0.0.0 --port 8080
# The README's "Docker" section shows a production run; `make image-check` builds and runs
# this file with podman on a local Debian base (no registry needed).
#
# The base image is pinned by digest so that every build starts from the same bytes.
# python:3.11-slim, multi-arch index digest (taken 2026-12-02 from public pins of that tag;
# no registry is reachable from our build machines). To move to a newer base, look the
# digest up and replace it here:
#   docker buildx imagetools inspect python:3.11-slim --format '{{json .Manifest.Digest}}'
ARG BASE_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

FROM ${BASE_IMAGE} AS build
WORKDIR /src
# The lock files first: the dependency layer is rebuilt only when they change.
COPY requirements/ ./requirements/
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements/build.txt \
    && pip download --no-cache-dir --require-hashes --no-deps -d /wheels \
       -r requirements/runtime.txt
COPY pyproject.toml README.md LICENSE NOTICE ./
COPY cds_service ./cds_service
COPY cards ./cards
COPY fhir_fixtures ./fhir_fixtures
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

FROM ${BASE_IMAGE}
# The release, as in cds_service/__init__.py (a test keeps the two equal).
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="rls-cds" \
      org.opencontainers.image.description="CDS Hooks 2.0 service for secondary causes of restless legs syndrome" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RLS_CDS_DATA_DIR=/home/cds/var
# The data directory (SQLite store, pseudonym key) belongs to the service's user, so a new
# named volume mounted there inherits that ownership.
RUN useradd --create-home --uid 10001 cds && install -d -o cds -g cds /home/cds/var
COPY --from=build /wheels /wheels
COPY requirements/runtime.txt /tmp/runtime.txt
# Exactly the locked versions (hash-checked), then the service's own wheel.
RUN pip install --no-cache-dir --no-index --find-links /wheels --require-hashes --no-deps \
       -r /tmp/runtime.txt \
    && pip install --no-cache-dir --no-index --no-deps /wheels/rls_cds-*.whl \
    && rm -rf /wheels /tmp/runtime.txt
USER cds
WORKDIR /home/cds
VOLUME ["/home/cds/var"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
# `rls-cds serve --prod` runs gunicorn with cds_service/gunicorn_conf.py: one worker per CPU
# of the container's quota (RLS_CDS_WORKERS overrides), 4 threads each, worker timeout far
# above the hook deadline, 20 s graceful shutdown, /metrics summed over workers.
CMD ["rls-cds", "serve", "--prod", "--host", "0.0.0.0", "--port", "8080"]
