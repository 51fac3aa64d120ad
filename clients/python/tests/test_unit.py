"""Client behaviour that needs no server: cache margins, the retry config, error mapping."""

from __future__ import annotations

import json

import grpc

from credbroker_client import Authorization, Credbroker, CredbrokerError, ReauthRequiredError, service_config
from credbroker_client.errors import from_rpc_error


class FakeRpcError(grpc.RpcError):
    def __init__(self, code, details):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


def test_cache_serves_until_expiry_minus_margin():
    now = [1000.0]
    broker = Credbroker("127.0.0.1:1", margin=30, clock=lambda: now[0])
    fetched = []

    def fetch(provider, subject, min_validity):
        fetched.append(now[0])
        return Authorization(headers=(("authorization", "x"),), expires_at=now[0] + 100, fingerprint=str(now[0]))

    broker._fetch = fetch
    broker.authorization("p", "s")
    now[0] = 1069.0  # 31 s left: still served
    broker.authorization("p", "s")
    assert fetched == [1000.0]
    now[0] = 1070.5  # 29.5 s left: renewed
    broker.authorization("p", "s")
    assert fetched == [1000.0, 1070.5]
    broker.authorization("p", "s", min_validity=120)  # asks for more than is left
    assert len(fetched) == 3
    broker.close()


def test_retry_policy_covers_unavailable_and_not_proxy_calls():
    config = json.loads(service_config())
    policy = config["methodConfig"][0]["retryPolicy"]
    assert policy["retryableStatusCodes"] == ["UNAVAILABLE"] and policy["maxAttempts"] > 1
    methods = [n["method"] for n in config["methodConfig"][0]["name"]]
    assert "GetAuthorization" in methods and "ProxyCall" not in methods
    assert json.loads(service_config(1)) == {"methodConfig": []}


def test_errors_keep_code_and_message():
    error = from_rpc_error(FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, "credential needs re-authorization"))
    assert isinstance(error, ReauthRequiredError) and isinstance(error, CredbrokerError)
    assert str(error) == "FAILED_PRECONDITION: credential needs re-authorization"
