"""SQL storage: SQLAlchemy Core tables, Alembic migrations, and one repository per aggregate."""
