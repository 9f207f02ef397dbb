"""Local lab for ragops.recovery: a Kubernetes API emulator, a node agent and a small RAG stack."""
