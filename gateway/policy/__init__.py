"""Pure security policy: Pod Security Standards, tenants and their decisions, input limits, identities.

No I/O here (import-linter enforces it): the API layer reads configuration, sockets and clocks, and
passes plain values in.
"""
