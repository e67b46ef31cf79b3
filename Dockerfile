# syntax=docker/dockerfile:1
# tim-push-gateway: multi-stage build, runs as an unprivileged user on a read-only root file system.
#   docker build -t tim-push-gateway .
#   docker run --read-only -p 5000:5000 \
#     -v "$PWD/config.yaml:/config/config.yaml:ro" -v "$PWD/secrets:/secrets:ro" tim-push-gateway
# The config must bind 0.0.0.0 (server.bind) to be reachable from outside the container; credential files
# (APNs .p8/.pem, FCM service-account JSON) are mounted under /secrets and referenced from the config.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY timinfo ./timinfo
# Byte-compile at build time: the runtime root file system is read-only.
RUN /opt/venv/bin/pip install --no-compile ".[redis]" \
    && /opt/venv/bin/python -m compileall -q -j 0 /opt/venv/lib

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="tim-push-gateway" \
      org.opencontainers.image.description="Matrix push gateway (APNs, FCM) and TI-M TiMessengerInformation API" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin gateway
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TIM_PUSH_GATEWAY_CONFIG=/config/config.yaml
USER 10001:10001
EXPOSE 5000
# No curl in the image: the gateway's own CLI probes /health on the configured port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["tim-push-gateway", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["tim-push-gateway"]
CMD ["serve"]
