"""Alembic migrations of the store, run programmatically at start (see gateway.store.engine)."""
