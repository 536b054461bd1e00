"""Alembic environment shared by every service: the caller passes the connection.

Each service keeps only its ``versions/`` folder; :func:`flotilla.core.upgrade_database`
points Alembic here with the service's ``version_locations``.
"""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=context.config.attributes.get("target_metadata"),
    render_as_batch=connection.dialect.name == "sqlite",
    version_table=context.config.attributes.get("version_table", "alembic_version"),
)
with context.begin_transaction():
    context.run_migrations()
