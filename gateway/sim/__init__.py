"""A local Kubernetes simulator: a separate world the gateway talks to over HTTPS.

It imports nothing of the gateway (import-linter enforces it). Entry points:

- `podgate sim [--config clusters/local.yaml] [--kubeconfig-dir DIR]` (gateway/sim/main.py).
- `gateway.sim.cluster.SimWorld` / `SimCluster`, for tests and the gateway's embedded mode:

      async with SimWorld.from_file("clusters/local.yaml", kubeconfig_dir=tmp) as world:
          cluster = world.clusters["local-eu-gpu"]
          cluster.url, cluster.kubeconfig_path, cluster.ca_pem, cluster.admin_token
          world.kubeconfig_path                      # merged: one context per cluster

  Credentials: `add_static_token`, `add_token_verifier(fn)`, `issue_client_certificate`,
  `mint_service_account_token`, `kubeconfig(token=... | client=...)`, `ssl_context()`.
  Faults: `set_faults(latency=, error_rate=, error_code=, retry_after=)`, `lose_answers(verb, resource,
  count)`, `await outage()` / `await restore()`, `drop_watches()`, `await fail_node(name)` / `await recover_node(name)`,
  `request_counts()`; the same over `world.control` (see gateway/sim/control.py).
  The objects themselves: `cluster.store` (gateway/sim/store.py).

Layout: store (objects, versions, watches) <- apiserver (pipeline) -> handlers, listing, streams,
reviews; auth, rbac, tls, validation, patch, selectors, tables, discovery are its pure-ish parts;
scheduler, kubelet and runtime/ are the node side.
"""
