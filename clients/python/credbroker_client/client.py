"""``Credbroker``: the broker's API for services, with a header cache.

``authorization()`` serves a cached header while it stays valid for at least
``max(margin, min_validity)`` more seconds, and asks the broker otherwise; ``report_rejected()``
tells the broker a header got a 401 (the broker renews it if it is still current) and drops it
from the cache, so the next ``authorization()`` gets the renewed one.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterable, Optional, Sequence, Tuple, Union

import grpc
from google.protobuf import duration_pb2

from credbroker.v1 import broker_pb2, broker_pb2_grpc

from .config import TLS, service_config
from .errors import from_rpc_error
from .metadata import BearerToken

Headers = Tuple[Tuple[str, str], ...]


@dataclass(frozen=True)
class Authorization:
    """Headers to attach upstream. ``repr`` never shows their values."""

    headers: Headers = field(repr=False)
    # Seconds since the epoch; None when the credential does not expire.
    expires_at: Optional[float]
    fingerprint: str

    def as_dict(self) -> dict:
        return dict(self.headers)

    def valid_for(self, now: float) -> float:
        """Seconds of validity left at ``now`` (infinite when it never expires)."""
        return float("inf") if self.expires_at is None else self.expires_at - now


@dataclass(frozen=True)
class ProxyResponse:
    """The upstream's answer to a ``proxy_call``, whatever its status."""

    status: int
    headers: Tuple[Tuple[str, str], ...]
    body: bytes


class Credbroker:
    """A connection to credbroker.

    ``target``: ``host:port``. ``tls``: a ``TLS`` for TLS/mTLS, None for plaintext.
    ``bearer_token``: a string or a function returning one, sent as ``authorization: Bearer``.
    ``timeout``: the deadline of every call, in seconds. ``max_attempts``: attempts on
    UNAVAILABLE (1 turns retries off). ``margin``: a cached header is renewed this many seconds
    before it expires (at least ``min_validity``). ``interceptors``: extra gRPC client
    interceptors (metrics, tracing). ``clock``: for tests.
    """

    def __init__(
        self,
        target: str,
        *,
        tls: Optional[TLS] = None,
        bearer_token: Union[str, Callable[[], str], None] = None,
        timeout: float = 5.0,
        max_attempts: int = 4,
        margin: float = 30.0,
        interceptors: Sequence[grpc.UnaryUnaryClientInterceptor] = (),
        clock: Callable[[], float] = time.time,
    ):
        options = [("grpc.enable_retries", 1), ("grpc.service_config", service_config(max_attempts))]
        if tls is not None and tls.server_name:
            options.append(("grpc.ssl_target_name_override", tls.server_name))
        if tls is None:
            channel = grpc.insecure_channel(target, options=options)
        else:
            channel = grpc.secure_channel(target, tls.credentials(), options=options)
        chain = list(interceptors)
        if bearer_token is not None:
            chain.append(BearerToken(bearer_token if callable(bearer_token) else (lambda: bearer_token)))
        self._channel = grpc.intercept_channel(channel, *chain) if chain else channel
        self._raw_channel = channel
        self._stub = broker_pb2_grpc.CredentialBrokerStub(self._channel)
        self._timeout = timeout
        self._margin = margin
        self._clock = clock
        self._cache: dict = {}
        self._lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        self._raw_channel.close()

    def __enter__(self) -> "Credbroker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def channel(self) -> grpc.Channel:
        """The channel (with interceptors), e.g. for the admin stub."""
        return self._channel

    # -- the API ----------------------------------------------------------------------------

    def authorization(self, provider: str, subject: str = "", min_validity: float = 30.0) -> Authorization:
        """Headers valid for at least ``min_validity`` seconds: cached, or fetched."""
        key = (provider, subject)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached.valid_for(self._clock()) > max(self._margin, min_validity):
            return cached
        fresh = self._fetch(provider, subject, min_validity)
        with self._lock:
            self._cache[key] = fresh
        return fresh

    def report_rejected(self, provider: str, subject: str, fingerprint: str) -> None:
        """The header with ``fingerprint`` was answered 401 upstream."""
        with self._lock:
            cached = self._cache.get((provider, subject))
            if cached is not None and cached.fingerprint == fingerprint:
                del self._cache[(provider, subject)]
        request = broker_pb2.ReportRejectedRequest(provider=provider, subject=subject, token_fingerprint=fingerprint)
        self._call(self._stub.ReportRejected, request)

    def proxy_call(
        self,
        provider: str,
        subject: str,
        method: str,
        path: str,
        *,
        headers: Iterable[Tuple[str, str]] = (),
        body: bytes = b"",
        timeout: Optional[float] = None,
    ) -> ProxyResponse:
        """The broker makes the upstream call with the credential attached; ``path`` is
        relative to the provider's API base. Never retried (a POST must not run twice)."""
        request = broker_pb2.ProxyCallRequest(
            provider=provider, subject=subject, method=method, path=path,
            headers=[broker_pb2.Header(name=n, value=v) for n, v in headers], body=body,
        )
        deadline = timeout if timeout is not None else self._timeout
        if timeout is not None:
            request.timeout.CopyFrom(_duration(timeout))
            deadline = timeout + 1.0  # the broker answers DEADLINE_EXCEEDED itself first
        response = self._call(self._stub.ProxyCall, request, deadline)
        return ProxyResponse(response.status, tuple((h.name, h.value) for h in response.headers), response.body)

    # -- internals --------------------------------------------------------------------------

    def _fetch(self, provider: str, subject: str, min_validity: float) -> Authorization:
        request = broker_pb2.GetAuthorizationRequest(provider=provider, subject=subject)
        request.min_validity.CopyFrom(_duration(min_validity))
        response = self._call(self._stub.GetAuthorization, request)
        expires_at = None
        if response.HasField("expires_at"):
            expires_at = response.expires_at.seconds + response.expires_at.nanos / 1e9
        headers = tuple((h.name, h.value) for h in response.headers)
        return Authorization(headers=headers, expires_at=expires_at, fingerprint=response.token_fingerprint)

    def _call(self, method, request, timeout: Optional[float] = None):
        try:
            return method(request, timeout=timeout or self._timeout)
        except grpc.RpcError as error:
            # `from None`: the RpcError's own text is kept as code + message only.
            raise from_rpc_error(error) from None


def _duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def utc(epoch_seconds: Optional[float]) -> Optional[datetime]:
    """``expires_at`` as an aware datetime."""
    return None if epoch_seconds is None else datetime.fromtimestamp(epoch_seconds, tz=timezone.utc)
