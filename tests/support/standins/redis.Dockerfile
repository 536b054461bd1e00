# A stand-in for the chart's redis image (redis:7.4-alpine cannot be pulled here), from Debian's
# redis-server package: redis-server and redis-cli on PATH, the redis user with the official
# image's UID 999, /data its working directory.
ARG BASE
FROM ${BASE}
USER root
RUN groupadd --gid 999 redis && useradd --uid 999 --gid 999 --home-dir /data --shell /usr/sbin/nologin redis \
    && apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server >/dev/null \
    && rm -rf /var/lib/apt/lists/* /usr/share/doc /usr/share/man
WORKDIR /data
USER 999:999
CMD ["redis-server"]
