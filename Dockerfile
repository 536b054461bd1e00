# One image per workspace member (`make images` builds them all with BuildKit):
#   DOCKER_BUILDKIT=1 docker build --build-arg SERVICE=orders -t flotilla-orders .
# SERVICE: edge | orders | inventory | notifications | payments | console | cli | operator
# Built with uv from uv.lock (only that member's dependencies, the extras of flotilla-core it
# names included), run as a fixed non-root UID, fine with a read-only root filesystem (write
# only to /tmp and the volumes the chart mounts).
# NOTE: no `# syntax=` line: BuildKit would pull that frontend image; the daemon's built-in
# frontend builds this file, offline too.
# PYTHON_IMAGE, UV_IMAGE: the base images; `make base-images` makes stand-ins for machines that
# cannot pull (and `make images` takes them when the official ones are not here).

ARG PYTHON_IMAGE=python:3.11-slim
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.9

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS build
ARG SERVICE
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# the lock and every member's metadata first, so the dependency layer is cached across code edits
COPY pyproject.toml uv.lock ./
COPY services/core/pyproject.toml services/core/
COPY services/contracts/pyproject.toml services/contracts/
COPY services/edge/pyproject.toml services/edge/
COPY services/orders/pyproject.toml services/orders/
COPY services/inventory/pyproject.toml services/inventory/
COPY services/notifications/pyproject.toml services/notifications/
COPY services/payments/pyproject.toml services/payments/
COPY services/console/pyproject.toml services/console/
COPY services/cli/pyproject.toml services/cli/
COPY operator/pyproject.toml operator/
RUN --mount=type=cache,target=/root/.cache/uv \
    test -n "$SERVICE" || { echo "pass --build-arg SERVICE=<member>"; exit 2; } && \
    PACKAGE="flotilla-$SERVICE" && \
    for dir in services/* operator; do mkdir -p "$dir/src/flotilla"; done && \
    uv sync --frozen --no-dev --no-install-workspace --package "$PACKAGE"
COPY services services
COPY operator operator
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package "flotilla-$SERVICE"

FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE
LABEL org.opencontainers.image.title="flotilla-${SERVICE}" \
      org.opencontainers.image.source="https://github.com/flotilla/flotilla"
RUN groupadd --gid 10001 flotilla && \
    useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin flotilla
COPY --from=build --chown=root:root /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /tmp
USER 10001:10001
# exec form, no shell in between: SIGTERM reaches Python, which drains (workers) or stops
# accepting (servers); the chart's terminationGracePeriodSeconds covers the longest drain.
STOPSIGNAL SIGTERM
ENTRYPOINT []
CMD ["python", "-c", "print('give a command, e.g. python -m flotilla.orders api')"]
