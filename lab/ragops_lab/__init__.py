"""Local lab for ragops.recovery: the upstream Kubernetes control plane, a node agent and a small RAG stack."""
