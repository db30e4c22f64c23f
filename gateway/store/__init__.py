"""Persistence of clusters, pod records, placements, results, the event journal and the audit log.

Call sites depend on the `Store` protocol; `open_store(url)` gives the SQLite or PostgreSQL one.
"""

from gateway.store.base import AuditRecord, Store, TenantAdmission
from gateway.store.sql import SqlStore, open_store
from gateway.store.writer import StoreClosed, StoreUnavailable

__all__ = ["AuditRecord", "SqlStore", "Store", "StoreClosed", "StoreUnavailable", "TenantAdmission", "open_store"]
