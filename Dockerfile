# debug-sink: the sink as a container. Entry point `debug-sink`, default command `run`.
#
#   docker build -t debug-sink .
#   docker run --rm -e DEBUG_SINK_POSTGRES_DSN=... -e DEBUG_SINK_KAFKA_BOOTSTRAP_SERVERS=... debug-sink
#
# Two stages: `build` makes the wheel (migrations included) and installs it with its
# dependencies into a virtualenv; `runtime` gets that virtualenv only -- no compiler, no
# pip, no source tree -- and runs as an unprivileged user. Every dependency ships binary
# wheels for CPython 3.11 on linux x86_64/aarch64, so neither stage needs build tools.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ONLY_BINARY=:all:
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY migrations ./migrations
RUN python -m venv /opt/debug-sink \
 && /opt/debug-sink/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/debug-sink/bin/pip install /wheels/debug_sink-*.whl \
 && /opt/debug-sink/bin/pip uninstall --yes pip \
 && /opt/debug-sink/bin/debug-sink --help > /dev/null

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 debugsink \
 && useradd --system --uid 10001 --gid debugsink --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin debugsink
COPY --from=build /opt/debug-sink /opt/debug-sink
ENV PATH=/opt/debug-sink/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DEBUG_SINK_LOG_FORMAT=json \
    DEBUG_SINK_METRICS_PORT=9464
USER 10001:10001
EXPOSE 9464
# 200 when the sink is connected to PostgreSQL and Kafka and owns positioned partitions,
# 503 (urlopen raises) otherwise. Python's urllib: the image needs no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('DEBUG_SINK_METRICS_PORT', '9464') + '/healthz', timeout=4)"]
# SIGTERM: the sink stops fetching, commits the batch in flight and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["debug-sink"]
CMD ["run"]
