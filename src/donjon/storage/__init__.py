"""SQL storage: SQLAlchemy Core tables, Alembic migrations, and one repository per aggregate.

Races between nodes: a repository function runs inside the caller's transaction, and its conditional
UPDATEs and DELETEs are the arbiters: a row changes only if it is still in the state the caller saw, and
``rowcount`` says who won. On PostgreSQL and MariaDB (READ COMMITTED) a concurrent UPDATE of the same row
waits for the first to commit and then re-evaluates its WHERE clause on the committed row; on SQLite writes
are serialised by the database's write lock.
"""
