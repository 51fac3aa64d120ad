"""TLS/mTLS and the bearer token, against the real broker with ``[server.tls]``.

The broker requires client certificates from the test CA (``clients/testdata/tls``), lets the
test client's SPIFFE ID (``spiffe://credbroker.test/client``) read and write ``bro``
credentials under ``python/``, and verifies bearer tokens against a JWKS: grpc's own TLS stack
(a client nobody here wrote) against rustls.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile

import grpc
import pytest

from credbroker.v1 import broker_pb2, broker_pb2_grpc
from conftest import _binary, _Process
from credbroker_client import TLS, Credbroker, CredbrokerError

CERTS = pathlib.Path(__file__).resolve().parents[2] / "testdata" / "tls"
MTLS = TLS(ca_file=str(CERTS / "ca.pem"), cert_file=str(CERTS / "client.pem"), key_file=str(CERTS / "client.key"))
# A P-256 public key nobody holds the private half of: any bearer token fails to verify.
JWKS = {"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "x": "n_azk13MCE9JKp73RZo0TOU4NDVmLtjiWdRPTJyxBMM",
                  "y": "L83Gi0XbU-hBlI9XQiAKNRcRYmXynPOYgbRrt0N6Mjc"}]}
CODE = "7e" * 32  # a BRO token code (64 hex characters)


def _config(directory: pathlib.Path) -> str:
    (directory / "jwks.json").write_text(json.dumps(JWKS))
    return f"""
[server]
listen = "127.0.0.1:0"
[server.tls]
cert_file = "{CERTS / 'server.pem'}"
key_file = "{CERTS / 'server.key'}"
client_ca_file = "{CERTS / 'ca.pem'}"
[telemetry]
log_format = "json"
[auth.jwt]
jwks_file = "{directory / 'jwks.json'}"
issuer = "https://issuer.test"
audience = "credbroker"

[[policy]]
callers = ["spiffe://credbroker.test/client"]
rpcs = ["*", "PutCredential"]
providers = ["bro"]
subjects = ["python/*"]

[[providers]]
name = "bro"
kind = "bro"
api_base_url = "http://127.0.0.1:9/bro/api/v2/"
"""


@pytest.fixture(scope="module")
def mtls_target():
    with tempfile.TemporaryDirectory() as directory:
        path = pathlib.Path(directory) / "credbroker.toml"
        path.write_text(_config(pathlib.Path(directory)))
        process = _Process([_binary("CREDBROKER_BIN", "credbroker"), "serve", "--config", str(path)], env=dict(os.environ))
        target = process.wait_for(r'(?=.*credbroker listening).*"addr":"([0-9.:]+)"').group(1)
        with grpc.secure_channel(target, MTLS.credentials()) as channel:
            request = broker_pb2.PutCredentialRequest(
                provider="bro", subject="python/a", bro_token=broker_pb2.BroToken(username="u|1", code=CODE)
            )
            broker_pb2_grpc.CredentialAdminStub(channel).PutCredential(request, timeout=30)
        yield target, process
        process.stop()


def test_mtls_caller_allowed_by_policy_gets_the_header(mtls_target):
    target, process = mtls_target
    with Credbroker(target, tls=MTLS, timeout=30) as broker:
        auth = broker.authorization("bro", "python/a")
    assert auth.as_dict()["authorization"].startswith("Basic ")
    assert CODE not in "".join(process.lines), "no secret in the broker's log"


def test_a_subject_outside_the_policy_is_permission_denied(mtls_target):
    target, _ = mtls_target
    with Credbroker(target, tls=MTLS, timeout=30, max_attempts=1) as broker:
        with pytest.raises(CredbrokerError) as denied:
            broker.authorization("bro", "other/a")
    assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED


def test_a_bearer_token_that_does_not_verify_is_unauthenticated_and_not_echoed(mtls_target):
    target, _ = mtls_target
    with Credbroker(target, tls=MTLS, bearer_token=lambda: "tok-1-not-a-jwt", timeout=30, max_attempts=1) as broker:
        with pytest.raises(CredbrokerError) as refused:
            broker.authorization("bro", "python/a")
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert "bearer token" in str(refused.value) and "tok-1" not in str(refused.value)


@pytest.mark.parametrize(
    "tls",
    [
        TLS(ca_file=str(CERTS / "ca.pem")),  # no client certificate
        TLS(ca_file=str(CERTS / "client.pem"), cert_file=str(CERTS / "client.pem"), key_file=str(CERTS / "client.key")),
    ],
    ids=["no-client-certificate", "untrusted-ca"],
)
def test_refused_without_the_right_certificates(mtls_target, tls):
    target, _ = mtls_target
    with Credbroker(target, tls=tls, timeout=10, max_attempts=1) as broker:
        with pytest.raises(CredbrokerError) as refused:
            broker.authorization("bro", "python/a")
    assert refused.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
