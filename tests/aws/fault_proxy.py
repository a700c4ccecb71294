"""An HTTP proxy between boto3 and a moto server that injects AWS faults over real HTTP.

Every request is forwarded unchanged (method, path, query, headers including Host, body)
to the upstream moto server and its response relayed back, unless a rule set with
`throttle` or `fail` matches the request's AWS action: then the proxy answers itself with
an error body in the wire format of the request's protocol, so botocore parses it exactly
as it would parse AWS's:

- ec2 (service `ec2` in the SigV4 credential scope): `<Response><Errors><Error>...` XML;
- other query-protocol services (elasticloadbalancing, rds, ...): `<ErrorResponse>` XML;
- JSON protocol (an `X-Amz-Target` header; CloudWatch with this botocore):
  `{"__type": CODE, "message": ...}` (plus `x-amzn-query-error` when the client sent
  `x-amzn-query-mode`, as AWS does for query-compatible services);
- smithy RPC v2 CBOR (`/service/S/operation/OP` paths): the same map, CBOR-encoded;
- S3 (REST, path-style `/bucket/key`): `<Error>` XML; the action is named from the
  method and path (PutObject, GetObject, HeadObject, DeleteObject, ListObjectsV2, ...).

moto's EC2 instances are `running` as soon as RunInstances returns (moto's state manager
has no `ec2::instance` model), so `instances_pending_for(seconds)` makes the proxy show
instances launched (RunInstances) or started (StartInstances) through it as `pending`
(code 0) in DescribeInstances / DescribeInstanceStatus responses for that long.

Only ever listens on, and connects to, 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Literal
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

__all__ = ["Call", "FaultProxy", "Protocol", "identify"]

LOOPBACK = "127.0.0.1"

Protocol = Literal["ec2", "query", "json", "cbor", "s3"]

# Headers that describe one hop, not the message: never forwarded either way.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

_DEFAULT_THROTTLE_CODE: dict[Protocol, str] = {
    "ec2": "RequestLimitExceeded",
    "query": "Throttling",
    "json": "Throttling",
    "cbor": "Throttling",
    "s3": "SlowDown",
}


@dataclass(frozen=True)
class Call:
    """One request seen by the proxy."""

    service: str  # the SigV4 credential scope's service: ec2, elasticloadbalancing, monitoring
    action: str  # RunInstances, DescribeTargetGroups, GetMetricData; "" if none was found
    protocol: Protocol
    faulted: bool  # answered by a rule, never reached moto


@dataclass
class _Rule:
    action: str
    service: str | None
    code: str | None  # None: the protocol's throttling code
    message: str
    status: int | None  # None: the protocol's throttling status
    remaining: int | None  # None: every call until reset

    def matches(self, call: Call) -> bool:
        return (
            self.action == call.action
            and (self.service is None or self.service == call.service)
            and (self.remaining is None or self.remaining > 0)
        )


def identify(
    method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[str, str, Protocol]:
    """(service, action, protocol) of an AWS request; header names must be lower case."""
    service = _scope_service(headers.get("authorization", ""))
    url = urlsplit(path)
    target = headers.get("x-amz-target")
    if target:
        return service, target.rsplit(".", 1)[-1], "json"
    parts = url.path.strip("/").split("/")
    if len(parts) >= 4 and parts[0] == "service" and parts[2] == "operation":
        return service, parts[3], "cbor"  # smithy RPC v2: /service/NAME/operation/OP
    if service == "s3":
        return service, _s3_action(method, url.path, url.query), "s3"
    protocol: Protocol = "ec2" if service == "ec2" else "query"
    action = _first(parse_qs(url.query), "Action")
    if not action and method == "POST":
        content_type = headers.get("content-type", "")
        if not content_type or content_type.startswith("application/x-www-form-urlencoded"):
            action = _first(parse_qs(body.decode("utf-8", "replace")), "Action")
    return service, action, protocol


def _s3_action(method: str, path: str, query: str) -> str:
    """The S3 operation of a path-style request (the few an object store uses)."""
    has_key = "/" in path.strip("/")
    if not has_key:
        bucket_actions = {"GET": "ListObjectsV2" if "list-type=2" in query else "ListObjects"}
        bucket_actions |= {"PUT": "CreateBucket", "HEAD": "HeadBucket", "DELETE": "DeleteBucket"}
        return bucket_actions.get(method, method)
    object_actions = {"GET": "GetObject", "PUT": "PutObject", "HEAD": "HeadObject"}
    object_actions |= {"DELETE": "DeleteObject", "POST": "PostObject"}
    return object_actions.get(method, method)


def _scope_service(authorization: str) -> str:
    # AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/ec2/aws4_request, SignedHeaders=...
    marker = "Credential="
    start = authorization.find(marker)
    if start < 0:
        return ""
    credential = authorization[start + len(marker) :].split(",", 1)[0].strip()
    scope = credential.split("/")
    return scope[3] if len(scope) >= 5 else ""


def _first(query: dict[str, list[str]], name: str) -> str:
    values = query.get(name)
    return values[0] if values else ""


def error_response(
    protocol: Protocol,
    code: str,
    message: str,
    status: int,
    *,
    json_content_type: str = "application/x-amz-json-1.0",
    query_mode: bool = False,
) -> tuple[int, dict[str, str], bytes]:
    """An AWS error response (status, headers, body) as botocore expects for `protocol`."""
    request_id = str(uuid.uuid4())
    headers = {"x-amzn-RequestId": request_id}
    if protocol == "s3":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        ).encode()
        headers["Content-Type"] = "application/xml"
        headers["x-amz-request-id"] = request_id
    elif protocol == "ec2":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{escape(code)}</Code>"
            f"<Message>{escape(message)}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        ).encode()
        headers["Content-Type"] = "text/xml;charset=UTF-8"
    elif protocol == "query":
        kind = "Receiver" if status >= 500 else "Sender"
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<ErrorResponse><Error><Type>{kind}</Type><Code>{escape(code)}</Code>"
            f"<Message>{escape(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        headers["Content-Type"] = "text/xml"
    else:
        fields = {"__type": code, "message": message}
        if query_mode:
            kind = "Receiver" if status >= 500 else "Sender"
            headers["x-amzn-query-error"] = f"{code};{kind}"
        if protocol == "json":
            body = json.dumps(fields).encode()
            headers["Content-Type"] = json_content_type
        else:
            body = _cbor_text_map(fields)
            headers["Content-Type"] = "application/cbor"
            headers["smithy-protocol"] = "rpc-v2-cbor"
    return status, headers, body


def _cbor_text_map(fields: dict[str, str]) -> bytes:
    """The CBOR encoding of a map of text strings (all an error body needs)."""

    def head(major: int, length: int) -> bytes:
        if length < 24:
            return bytes([major << 5 | length])
        for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
            if length < 1 << (8 * size):
                return bytes([major << 5 | extra]) + length.to_bytes(size, "big")
        raise ValueError("too long")

    def text(value: str) -> bytes:
        raw = value.encode()
        return head(3, len(raw)) + raw

    return head(5, len(fields)) + b"".join(text(k) + text(v) for k, v in fields.items())


class FaultProxy:
    """A threaded HTTP proxy on 127.0.0.1 in front of `upstream` (a moto server URL).

    Use as a context manager, or `start()` / `stop()`. All controls are thread-safe.
    """

    def __init__(self, upstream: str, *, port: int = 0, timeout: float = 60.0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname != LOOPBACK or parts.port is None:
            raise ValueError(f"upstream must be http://{LOOPBACK}:PORT, not {upstream!r}")
        self.upstream = upstream.rstrip("/")
        self._upstream_port = parts.port
        self._timeout = timeout
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._seen: list[Call] = []
        self._pending_seconds = 0.0
        self._pending_until: dict[str, float] = {}
        self._server = _Server((LOOPBACK, port), _Handler)
        self._server.proxy = self
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> FaultProxy:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"fault-proxy-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.close_connections()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- controls ----------------------------------------------------------------------

    def throttle(
        self,
        action: str,
        times: int = 1,
        code: str | None = None,
        *,
        service: str | None = None,
        message: str = "Rate exceeded",
    ) -> None:
        """The next `times` calls of `action` are throttled.

        `code` defaults to what AWS sends: RequestLimitExceeded (HTTP 503) for ec2,
        SlowDown (HTTP 503) for s3, Throttling (HTTP 400) for the other protocols.
        `service` (the credential scope's name, e.g. "ec2", "elasticloadbalancing",
        "monitoring") narrows the match when two services share an action name.
        """
        if times < 1:
            raise ValueError("times must be at least 1")
        self._add(_Rule(action, service, code, message, None, times))

    def fail(
        self,
        action: str,
        code: str,
        message: str,
        status: int = 400,
        *,
        times: int | None = None,
        service: str | None = None,
    ) -> None:
        """Calls of `action` fail with `code` and `message`: every one, or the next `times`."""
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None for every call")
        self._add(_Rule(action, service, code, message, status, times))

    def instances_pending_for(self, seconds: float) -> None:
        """Instances launched or started through the proxy from now on look `pending`
        (code 0) in DescribeInstances / DescribeInstanceStatus for `seconds`, then as moto
        has them. 0 turns it off for new launches."""
        with self._lock:
            self._pending_seconds = max(0.0, seconds)

    def reset(self) -> None:
        """Forget every rule, every seen call and the pending instances."""
        with self._lock:
            self._rules.clear()
            self._seen.clear()
            self._pending_seconds = 0.0
            self._pending_until.clear()

    @property
    def calls(self) -> list[str]:
        """The actions seen, in order (faulted ones included)."""
        with self._lock:
            return [call.action for call in self._seen]

    @property
    def seen(self) -> list[Call]:
        """The requests seen, in order, with service, protocol and whether faulted."""
        with self._lock:
            return list(self._seen)

    def count(self, action: str) -> int:
        with self._lock:
            return Counter(call.action for call in self._seen)[action]

    def _add(self, rule: _Rule) -> None:
        with self._lock:
            self._rules.append(rule)

    # -- request handling (called from the handler threads) ----------------------------

    def _decide(self, call: Call) -> _Rule | None:
        """Record the call; the rule that answers it, if any (consuming one of its times)."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(call):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    self._seen.append(Call(call.service, call.action, call.protocol, faulted=True))
                    return rule
            self._seen.append(call)
            return None

    def _forward(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(LOOPBACK, self._upstream_port, timeout=self._timeout)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            if method in ("POST", "PUT", "PATCH") or body:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            response = conn.getresponse()
            data = response.read()
            return response.status, response.reason, response.getheaders(), data
        finally:
            conn.close()

    def _after_response(self, call: Call, status: int, body: bytes) -> bytes:
        """Track launches and rewrite instance states, for instances_pending_for."""
        if call.protocol != "ec2" or status != 200:
            return body
        if call.action in ("RunInstances", "StartInstances"):
            with self._lock:
                seconds = self._pending_seconds
            if seconds > 0:
                ids = _instance_ids(body)
                deadline = time.monotonic() + seconds
                with self._lock:
                    self._pending_until.update(dict.fromkeys(ids, deadline))
            return body
        if call.action in ("DescribeInstances", "DescribeInstanceStatus"):
            now = time.monotonic()
            with self._lock:
                pending = {i for i, until in self._pending_until.items() if until > now}
            if pending:
                return _show_pending(body, pending)
        return body


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _instance_ids(body: bytes) -> list[str]:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return []
    return [el.text for el in root.iter() if _local(el.tag) == "instanceId" and el.text]


def _show_pending(body: bytes, pending: set[str]) -> bytes:
    """`body` with every running instance of `pending` shown as pending (code 0)."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return body
    changed = False
    for item in root.iter():
        children = {_local(child.tag): child for child in item}
        instance_id = children.get("instanceId")
        state = children.get("instanceState")
        if instance_id is None or state is None or instance_id.text not in pending:
            continue
        fields = {_local(child.tag): child for child in state}
        code, name = fields.get("code"), fields.get("name")
        if code is not None and name is not None and name.text == "running":
            code.text, name.text = "0", "pending"
            changed = True
    if not changed:
        return body
    namespace = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    if namespace:
        ET.register_namespace("", namespace)
    rewritten: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return rewritten


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive handler threads must not block stop()
    proxy: FaultProxy

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: object
    ) -> None:
        if isinstance(request, socket.socket):
            with self._open_lock:
                self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        if isinstance(request, socket.socket):
            with self._open_lock:
                self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Close kept-alive client connections, so a stopped proxy serves nothing more."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 120  # an idle kept-alive connection is closed after this

    def do_GET(self) -> None:
        self._proxy()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the tests assert on proxy.calls instead

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _proxy(self) -> None:
        proxy = self.server.proxy
        body = self._read_body()
        headers = [
            (name, value)
            for name, value in self.headers.items()
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length"
        ]
        lowered = {name.lower(): value for name, value in headers}
        service, action, protocol = identify(self.command, self.path, lowered, body)
        call = Call(service, action, protocol, faulted=False)
        rule = proxy._decide(call)
        if rule is not None:
            status = rule.status or (503 if protocol in ("ec2", "s3") else 400)
            code = rule.code or _DEFAULT_THROTTLE_CODE[protocol]
            status, out_headers, data = error_response(
                protocol,
                code,
                rule.message,
                status,
                json_content_type=lowered.get("content-type", "application/x-amz-json-1.0"),
                query_mode="x-amzn-query-mode" in lowered,
            )
            self._reply(status, None, list(out_headers.items()), data)
            return
        try:
            status, reason, up_headers, data = proxy._forward(
                self.command, self.path, headers, body
            )
        except OSError as exc:
            message = f"fault proxy: upstream {proxy.upstream} unreachable: {exc}"
            self._reply(502, None, [("Content-Type", "text/plain")], message.encode())
            return
        data = proxy._after_response(call, status, data)
        kept = [
            (name, value)
            for name, value in up_headers
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length"
        ]
        self._reply(status, reason, kept, data)

    def _reply(
        self, status: int, reason: str | None, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        self.send_response_only(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()
