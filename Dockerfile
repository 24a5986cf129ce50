# apm-exporter container image: slim, non-root, no build tools in the final stage.
#   docker build -t apm-exporter:0.1.0 .
#   docker run --rm -p 9725:9725 apm-exporter:0.1.0
# The entrypoint is the documented CLI; CMD only names the config file, so
# `docker run IMAGE --config.file=/etc/apm-exporter/other.yaml --log.format=json`
# or `docker run IMAGE check-config /etc/apm-exporter/config.yaml` work as on a host.
# tests/test_deploy.py checks ENTRYPOINT/CMD against the real argument parser.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
# Every dependency ships manylinux wheels (bcrypt, psutil, pydantic-core), so nothing compiles. The
# probes extra is empty now (the probes speak their protocols themselves) and kept for old commands.
RUN python -m venv /opt/apm-exporter \
 && /opt/apm-exporter/bin/pip install ".[probes,auth]" \
 && /opt/apm-exporter/bin/pip uninstall --yes pip setuptools \
 && /opt/apm-exporter/bin/apm-exporter --version

FROM ${PYTHON_IMAGE}
# pip and setuptools are tools to build with, not to run with.
RUN python -m pip uninstall --yes pip setuptools wheel 2>/dev/null; true
COPY --from=build /opt/apm-exporter /opt/apm-exporter
COPY config.yaml /etc/apm-exporter/config.yaml
ENV PATH=/opt/apm-exporter/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# 65532: the conventional "nonroot" UID of distroless images; Kubernetes runAsNonRoot
# needs a numeric USER to check it.
USER 65532:65532
WORKDIR /tmp
EXPOSE 9725/tcp 8125/udp
ENTRYPOINT ["apm-exporter"]
CMD ["--config.file=/etc/apm-exporter/config.yaml"]
