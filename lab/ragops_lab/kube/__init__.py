"""The lab's Kubernetes: the upstream control plane built from lab/controlplane, its PKI, and the API
fault proxy the tests put in front of it."""
