# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Kubernetes connection options; the spec is the "k8s" group in
    # plugins/module_utils/argspec.py.
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file.
      - When neither O(kubeconfig), O(host) nor O(in_cluster) is set, the default kubeconfig
        (C(~/.kube/config) or E(KUBECONFIG)) is used.
      - Falls back to the environment variable E(K8S_AUTH_KUBECONFIG).
    type: path
  context:
    description:
      - The kubeconfig context to use. Falls back to E(K8S_AUTH_CONTEXT).
    type: str
  host:
    description:
      - URL of the Kubernetes API server, for example V(https://10.0.0.1:6443).
      - Overrides the server of the kubeconfig. Falls back to E(K8S_AUTH_HOST).
    type: str
  api_key:
    description:
      - Bearer token used to authenticate with the API server. Falls back to E(K8S_AUTH_API_KEY).
      - Never returned or logged.
    type: str
  ca_cert:
    description:
      - Path to a CA certificate used to verify the API server. Falls back to E(K8S_AUTH_SSL_CA_CERT).
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description:
      - Path to a client certificate for TLS authentication. Falls back to E(K8S_AUTH_CERT_FILE).
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Path to the key of O(client_cert). Falls back to E(K8S_AUTH_KEY_FILE).
    type: path
    aliases: [key_file]
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate. Falls back to E(K8S_AUTH_VERIFY_SSL).
      - When unset, the kubeconfig decides.
    type: bool
    aliases: [verify_ssl]
  in_cluster:
    description:
      - Use the service account of the pod the module runs in (for example inside a restore Job
        or an AWX execution environment running in the cluster).
      - Falls back to E(K8S_AUTH_IN_CLUSTER).
    type: bool
    default: false
  request_timeout:
    description:
      - Seconds one request to the API server may take before it counts as failed (and, for
        idempotent requests, is retried).
    type: float
    default: 30
  namespace:
    description:
      - Namespace of the RAG stack. Usually set once for the play in the
        C(group/ragops.recovery.rag) entry of C(module_defaults).
      - Falls back to E(K8S_AUTH_NAMESPACE).
    type: str
    default: default
notes:
  - Requests that are safe to repeat are retried with jittered, capped backoff on HTTP 429, 5xx and
    lost connections; creates are retried only on 429. Writes that race another writer (HTTP 409)
    re-read the object and re-apply the change.
requirements:
  - kubernetes >= 30.1.0 (Python library)
"""
