# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The production :class:`Transport`: the official ``kubernetes`` client, configured
from module options."""

from __future__ import annotations

import json
import time
import typing as t

from ..errors import ApiError, Conflict, NotFound, RecoveryError
from ..redaction import scrub
from . import podexec
from .client import RequestOptions

try:
    import urllib3
    import websocket
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.stream import stream as k8s_stream
except ImportError as error:
    KUBERNETES_IMPORT_ERROR: ImportError | None = error
else:
    KUBERNETES_IMPORT_ERROR = None

KUBERNETES_REQUIREMENT = "kubernetes"


def error_for_status(status: int, body: str, retry_after: str | None) -> ApiError:
    """The :class:`ApiError` for an HTTP error answer; the Status message is kept,
    scrubbed."""
    try:
        message = json.loads(body).get("message") or body
    except (ValueError, AttributeError):
        message = body
    message = scrub(str(message).strip())[:500] or "no message"
    cls = {404: NotFound, 409: Conflict}.get(status, ApiError)
    try:
        delay = float(retry_after) if retry_after else None
    except ValueError:
        delay = None
    return cls(message, status=status, reason=message, retry_after=delay)


def load_configuration(params: t.Mapping[str, t.Any]) -> t.Any:
    """A ``kubernetes.client.Configuration`` from the k8s option group (see the
    k8s_auth doc fragment)."""
    configuration = k8s_client.Configuration()
    try:
        if params.get("in_cluster"):
            k8s_config.load_incluster_config(client_configuration=configuration)
        elif (
            params.get("kubeconfig") or params.get("context") or not params.get("host")
        ):
            k8s_config.load_kube_config(
                config_file=params.get("kubeconfig"),
                context=params.get("context"),
                client_configuration=configuration,
            )
    except (ConfigException, OSError, TypeError) as error:
        raise RecoveryError(
            "Failed to load the Kubernetes configuration: %s" % scrub(str(error)),
            reason="no usable kubeconfig, in-cluster service account or host/api_key",
            next_step="Set kubeconfig (K8S_AUTH_KUBECONFIG), host and api_key, or "
            "in_cluster=true.",
        ) from None
    overrides = {
        "host": params.get("host"),
        "ssl_ca_cert": params.get("ca_cert"),
        "cert_file": params.get("client_cert"),
        "key_file": params.get("client_key"),
    }
    for attribute, value in overrides.items():
        if value:
            setattr(configuration, attribute, value)
    if params.get("api_key"):
        configuration.api_key = {"BearerToken": params["api_key"]}
        configuration.api_key_prefix = {"BearerToken": "Bearer"}
    if params.get("validate_certs") is not None:
        configuration.verify_ssl = params["validate_certs"]
    # Retries are ours (see retry.py); urllib3's own would hide lost connections and
    # double the wait.
    configuration.retries = 0
    return configuration


class KubernetesTransport:
    """Sends requests through ``kubernetes.client.ApiClient`` and answers parsed
    JSON."""

    def __init__(self, configuration: t.Any, request_timeout: float = 30.0) -> None:
        self.api = k8s_client.ApiClient(configuration)
        self.request_timeout = request_timeout

    def request(
        self, method: str, path: str, **options: t.Unpack[RequestOptions]
    ) -> t.Any:
        content_type = options.get("content_type") or "application/json"
        headers = {"Accept": "application/json, */*", "Content-Type": content_type}
        serialized = self.api.param_serialize(
            method,
            path,
            query_params=list(options.get("query", ())),
            header_params=headers,
            body=options.get("body"),
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api.call_api(
                *serialized, _request_timeout=self.request_timeout
            )
            data = response.read()
        except (urllib3.exceptions.HTTPError, OSError) as error:
            reason = scrub(type(error).__name__ + ": " + str(error))
            raise ApiError(reason, status=0, reason=reason) from None
        except k8s_client.ApiException as error:
            raise error_for_status(
                int(error.status or 0), str(error.body or error.reason), None
            ) from None
        text = (
            data.decode("utf-8", "replace")
            if isinstance(data, bytes)
            else str(data or "")
        )
        if not 200 <= response.status <= 299:
            raise error_for_status(
                response.status, text, response.getheader("Retry-After")
            )
        return parse_body(text, response.getheader("Content-Type") or "")

    def pod_exec(
        self,
        namespace: str,
        name: str,
        container: str | None,
        command: t.Sequence[str],
        timeout: float,
    ) -> podexec.ExecResult:
        """Run ``command`` in the pod over the ``pods/exec`` WebSocket and wait for it
        at most ``timeout`` seconds."""
        api = k8s_client.CoreV1Api(self.api)
        options: t.Dict[str, t.Any] = {"container": container} if container else {}
        started = time.monotonic()
        # The client gives no timeout of its own to the connection and the upgrade:
        # the command's time covers them too.
        previous = websocket.getdefaulttimeout()
        websocket.setdefaulttimeout(timeout)
        try:
            channels = k8s_stream(
                api.connect_get_namespaced_pod_exec,
                name,
                namespace,
                command=list(command),
                stdin=False,
                stdout=True,
                stderr=True,
                tty=False,
                _preload_content=False,
                binary=True,
                **options,
            )
        except k8s_client.ApiException as error:
            raise upgrade_error(error) from None
        finally:
            websocket.setdefaulttimeout(previous)
        return podexec.collect(_Streams(channels), command, timeout, started=started)


class _Streams:
    """The client's WebSocket streams, with a lost connection read as a closed one."""

    def __init__(self, client: t.Any) -> None:
        self.client = client
        self.lost = False

    def is_open(self) -> bool:
        return not self.lost and bool(self.client.is_open())

    def update(self, timeout: float = 0) -> None:
        try:
            self.client.update(timeout=timeout)
        except (websocket.WebSocketException, OSError):
            self.lost = True

    def read_channel(self, channel: int, timeout: float = 0) -> t.Any:
        return self.client.read_channel(channel, timeout=timeout)

    def close(self) -> None:
        try:
            self.client.close()
        except (websocket.WebSocketException, OSError):
            self.lost = True


def upgrade_error(error: t.Any) -> ApiError:
    """The API server's refusal of an exec (its HTTP status and Status message), or a
    connection that could not be made (status 0).

    The client wraps every failure of the WebSocket handshake in an ``ApiException``
    with status 0; the handshake's own error, with the status the API server
    answered, is the exception it was raised from.
    """
    cause = error.__context__
    if isinstance(cause, websocket.WebSocketBadStatusException):
        body = cause.resp_body
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        return error_for_status(int(cause.status_code), text, None)
    reason = scrub(str(error.reason or error))
    return ApiError(reason, status=0, reason=reason)


def parse_body(text: str, content_type: str) -> t.Any:
    """JSON answers parsed; text answers (pod logs, even logs made of JSON lines) as
    they are."""
    if text[:1] not in ("{", "[") or content_type.startswith("text/"):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def connect(params: t.Mapping[str, t.Any]) -> KubernetesTransport:
    """A transport configured from the module's k8s options."""
    return KubernetesTransport(
        load_configuration(params), float(params.get("request_timeout") or 30.0)
    )
