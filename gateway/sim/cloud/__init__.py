"""Cloud-style token verifiers a simulated cluster can plug in (`Authenticator.add_verifier`).

Each plays the part of the managed cluster's authenticator: EKS (aws-iam-authenticator's presigned STS
URLs), GKE (Google OAuth access tokens) and AKS (Entra ID JWTs), mapping the cloud principal to a
simulator Identity that RBAC then judges. Nothing here imports the gateway.
"""
