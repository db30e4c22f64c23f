"""A local Kubernetes simulator: a separate world the gateway talks to over HTTPS."""
