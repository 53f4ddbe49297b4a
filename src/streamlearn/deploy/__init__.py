"""What the Helm chart (``deploy/helm/streamlearn``) is generated from."""
