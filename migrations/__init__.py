"""Alembic migrations: the only way Easel's schema is created or changed."""
