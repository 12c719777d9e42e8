"""kubesim: a simulated GPU cluster behind the real Kubernetes API."""
