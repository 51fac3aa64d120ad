"""Attaching credbroker's headers to ``requests`` and ``httpx`` calls.

On a 401 the header's fingerprint is reported, a fresh header is fetched, and the request is
sent once more — only when the broker handed out a different header (a static credential that
the broker cannot renew would only get the same 401 again) and the body can be replayed.
"""

from __future__ import annotations

from typing import Optional

from .client import Authorization, Credbroker


class _Renewal:
    """What both auth classes share: which credential, and how to renew after a 401."""

    def __init__(self, client: Credbroker, provider: str, subject: str = "", min_validity: float = 30.0):
        self.client = client
        self.provider = provider
        self.subject = subject
        self.min_validity = min_validity

    def current(self) -> Authorization:
        return self.client.authorization(self.provider, self.subject, self.min_validity)

    def after_401(self, rejected: Authorization) -> Optional[Authorization]:
        """Reports ``rejected``; the renewed header, or None when there is none."""
        self.client.report_rejected(self.provider, self.subject, rejected.fingerprint)
        fresh = self.current()
        return None if fresh.fingerprint == rejected.fingerprint else fresh


try:
    import requests
    from requests.auth import AuthBase
except ImportError:  # requests is an optional extra
    AuthBase = object


class CredbrokerAuth(_Renewal, AuthBase):
    """``requests`` auth: ``session.auth = CredbrokerAuth(client, "pass", "jan")``."""

    def __call__(self, request):
        authorization = self.current()
        request.headers.update(authorization.as_dict())
        request.register_hook("response", lambda response, **kw: self._on_response(authorization, response, **kw))
        return request

    def _on_response(self, used: Authorization, response, **send_kwargs):
        request = response.request
        if response.status_code != 401 or getattr(request, "_credbroker_retried", False):
            return response
        if request.body is not None and not isinstance(request.body, (bytes, str)):
            return response  # a streamed body cannot be sent twice
        fresh = self.after_401(used)
        if fresh is None:
            return response
        response.content  # read and release the connection
        response.close()
        retry = request.copy()
        retry.headers.update(fresh.as_dict())
        retry._credbroker_retried = True
        retry.hooks["response"] = []
        second = response.connection.send(retry, **send_kwargs)
        second.history.append(response)
        second.request = retry
        return second


try:
    import httpx

    _HttpxAuth = httpx.Auth
except ImportError:  # httpx is an optional extra
    _HttpxAuth = object


class CredbrokerHttpxAuth(_Renewal, _HttpxAuth):
    """``httpx`` auth: ``httpx.Client(auth=CredbrokerHttpxAuth(client, "pass", "jan"))``.
    Also works with ``httpx.AsyncClient``, but the broker call then blocks the event loop
    while a header is fetched (cache hits do not)."""

    requires_request_body = True  # so the body can be sent again after a 401

    def auth_flow(self, request):
        used = self.current()
        request.headers.update(used.as_dict())
        response = yield request
        if response.status_code == 401:
            fresh = self.after_401(used)
            if fresh is not None:
                request.headers.update(fresh.as_dict())
                yield request
