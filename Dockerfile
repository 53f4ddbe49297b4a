# streamlearn's image: the package and its dependencies in a virtual environment, run as a
# non-root user; no compilers, no build tools, no pip in the final stage.
#   docker build -t streamlearn:0.1.0 .       (or podman / buildah)
# The Helm chart (deploy/helm/streamlearn) runs it with a read-only root filesystem and
# writable emptyDirs at /tmp and /data.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Every dependency has wheels for linux/amd64 and arm64. A C compiler builds streamlearn's
# one extension, the prediction workers' telemetry encoder (optional: without it the
# install still succeeds, with the same encoder in Python, ~3 µs more CPU per prediction);
# it stays in this stage. The final stage uses the same base, so the venv's interpreter
# path is valid there.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/streamlearn
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# pip itself is not needed at run time.
RUN /opt/streamlearn/bin/pip install . \
    && /opt/streamlearn/bin/pip uninstall --yes pip

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="streamlearn" \
      org.opencontainers.image.description="From a notebook model to a production feedback loop on Apache Kafka" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/streamlearn/streamlearn"
RUN groupadd --system --gid 1001 streamlearn \
    && useradd --system --uid 1001 --gid 1001 --home-dir /tmp --shell /usr/sbin/nologin streamlearn
COPY --from=build /opt/streamlearn /opt/streamlearn
ENV PATH=/opt/streamlearn/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    STREAMLEARN_DATA_DIR=/data \
    STREAMLEARN_CACHE_DIR=/tmp/cache
USER 1001:1001
WORKDIR /tmp
# serve, collector, registry, agents' metrics and probes
EXPOSE 8000 8001 8081 9100
ENTRYPOINT ["streamlearn"]
CMD ["--help"]
