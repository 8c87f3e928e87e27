# syntax=docker/dockerfile:1
# pynomaly-stream worker image.
#
# Two stages: the builder compiles a wheel of this project and installs it with its
# dependencies into a virtualenv; the runtime stage copies only that virtualenv, so no
# compiler, headers or pip caches reach production. Both stages use the same base image,
# which keeps the virtualenv's interpreter path (/usr/local/bin/python3.11) valid.
#
#   docker build -t pynomaly-stream:0.1.0 .
#   docker run --rm -e PYNOMALY_KAFKA_BOOTSTRAP=kafka:9092 pynomaly-stream:0.1.0 worker

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# A compiler only for dependencies that ship no wheel for this platform (e.g. arm64).
# Unpinned on purpose: this stage is thrown away, and Debian point releases replace the
# exact versions, which would break pinned builds.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/pynomaly
ENV PATH=/opt/pynomaly/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY streams/ streams/
COPY detectors/ detectors/
COPY sinks/ sinks/
COPY dashboards/ dashboards/
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && pip install -c constraints.txt /wheels/*.whl \
    && pynomaly --help > /dev/null

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="pynomaly-stream" \
      org.opencontainers.image.description="Streaming anomaly detection on Kafka" \
      org.opencontainers.image.licenses="Apache-2.0"
# A numeric, non-root user: Kubernetes' runAsNonRoot can only verify a numeric UID.
RUN groupadd --system --gid 10001 pynomaly \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/pynomaly --create-home \
       --shell /usr/sbin/nologin pynomaly \
    && mkdir -p /var/lib/pynomaly \
    && chown 10001:10001 /var/lib/pynomaly
COPY --from=builder /opt/pynomaly /opt/pynomaly
# Containers must bind 0.0.0.0 so probes and Prometheus reach the web server;
# the application default (127.0.0.1) is right for a laptop, not for a pod.
ENV PATH=/opt/pynomaly/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYNOMALY_WEB_HOST=0.0.0.0 \
    PYNOMALY_WEB_PORT=6066 \
    PYNOMALY_DATA_DIR=/var/lib/pynomaly
WORKDIR /var/lib/pynomaly
USER 10001:10001
EXPOSE 6066
# No curl in a slim image: the interpreter we already ship does the HTTP GET. A non-2xx
# answer or a refused connection raises, so the exit code is 1 (unhealthy).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PYNOMALY_WEB_PORT', '6066') + '/healthz', timeout=4)"]
ENTRYPOINT ["pynomaly"]
CMD ["worker"]
