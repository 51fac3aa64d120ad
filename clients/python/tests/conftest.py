"""Starts the real broker binary and the fake upstream for the suite.

Binaries: ``CREDBROKER_BIN`` and ``FAKE_UPSTREAM_BIN``, by default the ones the cargo test
build produced (``target/debug/``). The generated code is regenerated first, from the proto.
"""

from __future__ import annotations

import importlib
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import pytest

HERE = pathlib.Path(__file__).resolve().parent
PACKAGE = HERE.parent
REPO = PACKAGE.parent.parent
sys.path.insert(0, str(PACKAGE))

import generate  # noqa: E402

generate.generate()
# src/ is put on the path only once it exists: a directory that was missing when first looked
# up stays cached as "nothing here" (sys.path_importer_cache), so on a fresh checkout
# `import credbroker` would fail even after generate() created it.
sys.path.insert(1, str(PACKAGE / "src"))
importlib.invalidate_caches()

DEADLINE = 60.0  # generous: the machine is shared and loaded


def _binary(var: str, name: str) -> str:
    path = os.environ.get(var, str(REPO / "target" / "debug" / name))
    if not os.path.exists(path):
        pytest.exit(f"{path} is missing: build it with `cargo nextest run --workspace --no-run` or set {var}", 2)
    return path


class _Process:
    """A child process whose output is collected by a thread into a log file."""

    def __init__(self, args, env=None, cwd=None):
        self.log = tempfile.NamedTemporaryFile("w+", prefix="credbroker-client-test-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list = []
        self._seen = threading.Condition()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stdout:
            self.log.write(line)
            self.log.flush()
            with self._seen:
                self.lines.append(line)
                self._seen.notify_all()

    def wait_for(self, pattern: str) -> re.Match:
        """The first output line matching ``pattern``; fails past the deadline."""
        regex = re.compile(pattern)
        end = time.monotonic() + DEADLINE
        with self._seen:
            while True:
                for line in self.lines:
                    match = regex.search(line)
                    if match:
                        return match
                if self.proc.poll() is not None or time.monotonic() > end:
                    raise RuntimeError(f"no {pattern!r} in the output of {self.proc.args[0]}; log: {self.log.name}")
                self._seen.wait(timeout=0.5)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Fake:
    """The fake upstream and its control API."""

    def __init__(self, base: str, control: str):
        self.base = base
        self.control = control

    def url(self, path: str) -> str:
        return self.base + path

    def _post(self, path: str, body: dict) -> None:
        request = urllib.request.Request(
            self.control + path, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
        )
        urllib.request.urlopen(request, timeout=10).read()

    def lifetimes(self, **secs) -> None:
        self._post("lifetimes", secs)

    def fail(self, provider: str, status: int, times: int) -> None:
        self._post("fail", {"provider": provider, "status": status, "times": times})

    def reset(self) -> None:
        self._post("reset", {})

    def ledger(self) -> list:
        return json.loads(urllib.request.urlopen(self.control + "ledger", timeout=10).read())


@pytest.fixture(scope="session")
def fake():
    process = _Process([_binary("FAKE_UPSTREAM_BIN", "fake-upstream"), "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
    control = process.wait_for(r"control on (http://\S+/)").group(1)
    base = process.wait_for(r"fake-upstream listening on (http://\S+/)").group(1)
    yield Fake(base, control)
    process.stop()


@pytest.fixture(scope="session")
def broker_target(fake):
    """``host:port`` of a broker whose example providers point at the fake."""
    env = dict(os.environ)
    env.update(
        {
            "CREDBROKER__SERVER__LISTEN": "127.0.0.1:0",
            "CREDBROKER__TELEMETRY__LOG_FORMAT": "json",
            "CREDBROKER__PROVIDERS__PASS__API_BASE_URL": fake.url("pass/"),
            "CREDBROKER__PROVIDERS__BRO__API_BASE_URL": fake.url("bro/api/v2/"),
            "CREDBROKER__PROVIDERS__PASSOLUTION__API_BASE_URL": fake.url("passolution/api/v2/"),
            "CREDBROKER__PROVIDERS__PASSOLUTION__TOKEN_URL": fake.url("passolution/oauth/token"),
            "CREDBROKER__PROVIDERS__JOUWOMGEVING_DEMO__API_BASE_URL": fake.url("jouwomgeving/api/"),
            # The 401 tests log a session out right after it was handed out; the broker
            # ignores reports of headers younger than this (2 s by default, against abuse).
            "CREDBROKER__REFRESH__REJECTED_MIN_AGE": "0s",
        }
    )
    process = _Process([_binary("CREDBROKER_BIN", "credbroker"), "serve"], env=env)
    target = process.wait_for(r'(?=.*credbroker listening).*"addr":"([0-9.:]+)"').group(1)
    yield target
    process.stop()


@pytest.fixture(autouse=True)
def _normal_fake(fake):
    fake.reset()
    fake.lifetimes(jouwomgeving_jwt_secs=300, pass_max_lifetime_secs=7 * 86400, passolution_access_secs=365 * 86400)
    yield
