"""Alembic's environment for the web app's database: run on the connection it is given."""

from __future__ import annotations

from alembic import context

from cloud.web.db.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through cloud.web.db.Database.upgrade()")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite changes tables by copying them; batch mode does that for ALTERs.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
