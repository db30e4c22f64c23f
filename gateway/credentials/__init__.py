"""Per-cluster credential providers and short-lived kubeconfig issuing."""
