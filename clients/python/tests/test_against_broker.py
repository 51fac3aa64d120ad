"""The Python client against the real broker and the fake upstream."""

from __future__ import annotations

import time
import uuid

import grpc
import httpx
import pytest
import requests

from credbroker.v1 import broker_pb2, broker_pb2_grpc
from credbroker_client import (
    Credbroker,
    CredbrokerAuth,
    CredbrokerHttpxAuth,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)

PASS_USER = ("demo.pashouder", "demo-password-1")
JO_USER = ("demo-application", "demo-password-1")


class CountingInterceptor(grpc.UnaryUnaryClientInterceptor):
    """Counts calls per method (above gRPC's retries: one count per call)."""

    def __init__(self):
        self.calls: dict = {}

    def intercept_unary_unary(self, continuation, details, request):
        name = details.method.rsplit("/", 1)[-1]
        self.calls[name] = self.calls.get(name, 0) + 1
        return continuation(details, request)


def subject() -> str:
    return "py-" + uuid.uuid4().hex[:12]


def put_login(target: str, provider: str, subject: str, user) -> None:
    with grpc.insecure_channel(target) as channel:
        admin = broker_pb2_grpc.CredentialAdminStub(channel)
        login = broker_pb2.UsernamePassword(username=user[0], password=user[1])
        admin.PutCredential(broker_pb2.PutCredentialRequest(provider=provider, subject=subject, username_password=login), timeout=30)


def logins(fake, provider: str) -> list:
    return [e for e in fake.ledger() if e["provider"] == provider and e["operation"] == "Login"]


def test_cached_header_is_reused_and_renewed_before_expiry(fake, broker_target):
    fake.lifetimes(jouwomgeving_jwt_secs=6)
    who = subject()
    put_login(broker_target, "jouwomgeving-demo", who, JO_USER)
    counter = CountingInterceptor()
    with Credbroker(broker_target, timeout=30, margin=0, interceptors=[counter]) as broker:
        first = broker.authorization("jouwomgeving-demo", who, min_validity=2)
        assert first.as_dict()["authorization"].startswith("JWT ")
        assert broker.authorization("jouwomgeving-demo", who, min_validity=2) is first
        assert counter.calls["GetAuthorization"] == 1, "the second call was served from the cache"
        calls, end = 0, time.monotonic() + 60
        while True:
            current = broker.authorization("jouwomgeving-demo", who, min_validity=2)
            calls += 1
            # Every header served still had the validity asked for.
            assert current.valid_for(time.time()) > 1.5
            if current.fingerprint != first.fingerprint:
                break
            assert time.monotonic() < end, "the header was never renewed"
            time.sleep(0.05)
    assert current.expires_at > first.expires_at
    assert first.valid_for(time.time()) > 0, "renewed before the old header expired"
    assert counter.calls["GetAuthorization"] <= 4 < calls, (counter.calls, calls)


def test_401_from_upstream_leads_to_one_report_and_one_retry_with_requests(fake, broker_target):
    who = subject()
    put_login(broker_target, "pass", who, PASS_USER)
    counter = CountingInterceptor()
    with Credbroker(broker_target, timeout=30, interceptors=[counter]) as broker, requests.Session() as session:
        session.auth = CredbrokerAuth(broker, "pass", who)
        assert session.get(fake.url("pass/data/echo"), timeout=30).status_code == 200
        _log_out_upstream(fake, broker.authorization("pass", who))
        logins_before = len(logins(fake, "pass"))
        response = session.post(fake.url("pass/data/mirror"), data=b"replayed body", timeout=30)
    assert response.status_code == 200
    assert response.content == b"replayed body", "the body was sent again"
    assert [r.status_code for r in response.history] == [401], "exactly one retry"
    assert counter.calls["ReportRejected"] == 1
    assert len(logins(fake, "pass")) == logins_before + 1, "the broker renewed once"


def test_401_from_upstream_leads_to_one_report_and_one_retry_with_httpx(fake, broker_target):
    who = subject()
    put_login(broker_target, "pass", who, PASS_USER)
    counter = CountingInterceptor()
    with Credbroker(broker_target, timeout=30, interceptors=[counter]) as broker:
        with httpx.Client(auth=CredbrokerHttpxAuth(broker, "pass", who), timeout=30) as http:
            assert http.get(fake.url("pass/data/echo")).status_code == 200
            _log_out_upstream(fake, broker.authorization("pass", who))
            response = http.post(fake.url("pass/data/mirror"), content=b"again")
    assert (response.status_code, response.content) == (200, b"again")
    assert [r.status_code for r in response.history] == [401]
    assert counter.calls["ReportRejected"] == 1


def test_a_401_the_broker_cannot_renew_is_reported_once_and_returned(fake, broker_target):
    who = subject()
    # A BRO token the fake does not know: static, so the broker has nothing to renew.
    token = broker_pb2.BroToken(username="0dce6fc98256|999999999|1", code=uuid.uuid4().hex * 2)
    with grpc.insecure_channel(broker_target) as channel:
        request = broker_pb2.PutCredentialRequest(provider="bro", subject=who, bro_token=token)
        broker_pb2_grpc.CredentialAdminStub(channel).PutCredential(request, timeout=30)
    counter = CountingInterceptor()
    with Credbroker(broker_target, timeout=30, interceptors=[counter]) as broker, requests.Session() as session:
        session.auth = CredbrokerAuth(broker, "bro", who)
        response = session.get(fake.url("bro/api/v2/data/echo"), timeout=30)
    assert response.status_code == 401
    assert response.history == [], "no retry with the same header"
    assert counter.calls["ReportRejected"] == 1


def test_proxy_call_round_trips_a_body(fake, broker_target):
    who = subject()
    put_login(broker_target, "pass", who, PASS_USER)
    body = bytes(range(256)) * 40
    with Credbroker(broker_target, timeout=30) as broker:
        response = broker.proxy_call(
            "pass", who, "POST", "data/mirror", headers=[("content-type", "application/octet-stream")], body=body
        )
    assert response.status == 200
    assert response.body == body
    assert ("content-type", "application/octet-stream") in response.headers


def test_unavailable_is_retried(fake, broker_target):
    who = subject()
    put_login(broker_target, "jouwomgeving-demo", who, JO_USER)
    fake.fail("jouwomgeving", 503, 1)
    with Credbroker(broker_target, timeout=30) as broker:
        auth = broker.authorization("jouwomgeving-demo", who)
    assert auth.as_dict()["authorization"].startswith("JWT ")
    attempts = logins(fake, "jouwomgeving")
    assert [e["delivery"] for e in attempts[-2:]] == ["InjectedStatus(503)", "Replied"], attempts


def test_without_retries_unavailable_surfaces_with_the_brokers_message(fake, broker_target):
    who = subject()
    put_login(broker_target, "jouwomgeving-demo", who, JO_USER)
    fake.fail("jouwomgeving", 503, 1)
    with Credbroker(broker_target, timeout=30, max_attempts=1) as broker:
        with pytest.raises(UnavailableError) as raised:
            broker.authorization("jouwomgeving-demo", who)
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE
    assert "503" in raised.value.message, raised.value.message


def test_errors_carry_the_brokers_code_and_message(broker_target):
    with Credbroker(broker_target, timeout=30) as broker:
        with pytest.raises(NotFoundError) as missing:
            broker.authorization("no-such-provider", "x")
        with pytest.raises(InvalidArgumentError) as bad:
            broker.proxy_call("pass", "", "GET", "../escape")
    assert missing.value.code == grpc.StatusCode.NOT_FOUND
    assert "no-such-provider" in missing.value.message
    assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT and bad.value.message


def test_no_secret_in_repr_or_errors(fake, broker_target):
    who = subject()
    put_login(broker_target, "pass", who, PASS_USER)
    with Credbroker(broker_target, timeout=30, bearer_token="bearer-secret-123") as broker:
        auth = broker.authorization("pass", who)
        with pytest.raises(NotFoundError) as missing:
            broker.authorization("pass", subject())
    value = auth.as_dict()["authorization"]
    assert value not in repr(auth) and value not in str(auth)
    assert "bearer-secret-123" not in str(missing.value) and "bearer-secret-123" not in repr(missing.value)


def _log_out_upstream(fake, authorization) -> None:
    """Ends the PASS session behind the broker's back: its header now gets 401."""
    response = requests.delete(fake.url("pass/token/v1/login"), headers=authorization.as_dict(), timeout=30)
    assert response.status_code in (200, 204), response.text
