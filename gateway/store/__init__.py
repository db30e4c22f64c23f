"""Persistence of clusters, pod records, placements, results, the event journal and the audit log.

Call sites depend on the `Store` protocol; `SqlStore.open()` gives the SQLite (or any SQLAlchemy) one.
"""

from gateway.store.base import AuditEntry, Store
from gateway.store.sql import SqlStore
from gateway.store.writer import StoreClosed

__all__ = ["AuditEntry", "SqlStore", "Store", "StoreClosed"]
