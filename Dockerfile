# rls-cds production image: gunicorn (rls-cds serve --prod) serving create_app() as a non-root user.
# Build: docker build -t rls-cds .   Run: docker run -p 8080:8080 --env-file cds.env rls-cds
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cds_service ./cds_service
COPY cards ./cards
COPY fhir_fixtures ./fhir_fixtures
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RLS_CDS_DATA_DIR=/home/cds/var
RUN useradd --create-home --uid 10001 cds
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER cds
WORKDIR /home/cds
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
# `rls-cds serve --prod` runs gunicorn with cds_service/gunicorn_conf.py: one worker per CPU
# of the container's quota (RLS_CDS_WORKERS overrides), 4 threads each, worker timeout far
# above the hook deadline, 20 s graceful shutdown, /metrics summed over workers.
CMD ["rls-cds", "serve", "--prod", "--host", "0.0.0.0", "--port", "8080"]
