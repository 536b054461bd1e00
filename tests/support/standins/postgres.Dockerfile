# A stand-in for the chart's postgres image (postgres:17-alpine cannot be pulled here), from
# Debian's postgresql-15 package, with an entry point that does what the official image's does
# with the env the chart gives it (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, PGDATA and
# /docker-entrypoint-initdb.d/*.sql). UID 70, as the official Alpine image's postgres user.
ARG BASE
FROM ${BASE}
USER root
RUN groupadd --gid 70 postgres && useradd --uid 70 --gid 70 --home-dir /var/lib/postgresql --shell /bin/sh postgres \
    && mkdir -p /etc/postgresql-common/createcluster.d \
    && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/no-main-cluster.conf \
    && apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null \
    && rm -rf /var/lib/apt/lists/* /usr/share/doc /usr/share/man
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
USER 70:70
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
