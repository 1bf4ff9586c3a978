"""Test kit: starts the real ``fieldline-server`` binary and sets up an organisation through
its JSON admin API. Nothing is mocked.

The binary comes from the environment variable ``FIELDLINE_SERVER`` (set by
``mobile/scripts/test.sh``).
"""

import json
import os
import queue
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ADMIN_PASSWORD = "admin-password-for-tests"


def password(username):
    return f"{username}-password"


def server_binary():
    path = os.environ.get("FIELDLINE_SERVER", "")
    if not path or not os.access(path, os.X_OK):
        pytest.fail(
            "set FIELDLINE_SERVER=/path/to/fieldline-server "
            "(cargo build -p fieldline-server; mobile/scripts/test.sh does both)"
        )
    return path


class Server:
    """A running fieldline-server on a loopback port."""

    def __init__(self, data_dir):
        binary = server_binary()
        env = dict(os.environ, FIELDLINE_NEW_PASSWORD=ADMIN_PASSWORD, RUST_LOG="warn")
        subprocess.run(
            [binary, "create-user", "--role", "admin", "--username", "admin",
             "--data-dir", str(data_dir)],
            env=env, check=True, capture_output=True, timeout=120,
        )
        self.process = subprocess.Popen(
            [binary, "serve", "--addr", "127.0.0.1:0", "--data-dir", str(data_dir)],
            env=dict(os.environ, RUST_LOG=os.environ.get("FIELDLINE_TEST_LOG", "warn")),
            stdout=subprocess.PIPE, text=True,
        )
        found = queue.Queue()

        def drain():
            # Keep reading stdout so the server never blocks on a full pipe.
            for line in self.process.stdout:
                if line.startswith("listening on "):
                    found.put(line[len("listening on "):].strip())
            found.put(None)

        threading.Thread(target=drain, daemon=True).start()
        try:
            self.url = found.get(timeout=300)
        except queue.Empty:
            self.url = None
        if not self.url:
            self.close()
            raise RuntimeError("fieldline-server did not start listening")

    def close(self):
        self.process.kill()
        self.process.wait(timeout=30)


class Api:
    """A small client of the JSON admin API."""

    def __init__(self, base):
        self.base = base

    def call(self, method, path, token=None, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        if token:
            req.add_header("authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                text = resp.read().decode()
                return resp.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            return e.code, (json.loads(text) if text.startswith("{") else text)

    def ok(self, method, path, token, body=None):
        status, value = self.call(method, path, token, body)
        assert 200 <= status < 300, f"{method} {path}: {status} {value}"
        return value

    def login(self, username, pw):
        status, value = self.call("POST", "/v1/auth/login", body={"username": username, "password": pw})
        assert status == 200, f"login {username}: {status} {value}"
        return value["access_token"]


class Org:
    """One team "East" with a manager and a rep, and a catalog of three teas (CNY)."""

    def __init__(self, server):
        api = Api(server.url)
        admin = api.login("admin", ADMIN_PASSWORD)
        self.team = api.ok("POST", "/v1/teams", admin, {"name": "East"})["team"]["id"]
        self.manager_id = self._user(api, admin, "manager", "manager")
        self.rep_id = self._user(api, admin, "rep.a", "rep")
        api.ok("PUT", "/v1/catalog/settings", admin, {"base_currency": "CNY"})
        api.ok("PUT", "/v1/catalog/tax-classes/standard", admin, {"name": "VAT 13%", "rate_bp": 1300})
        self.products = [
            api.ok("POST", "/v1/catalog/products", admin, {
                "sku": f"TEA-{i}", "name": name, "category": "tea", "unit": "box",
                "base_price_minor": 5000 + i * 1000, "tax_class": "standard", "active": True,
            })["id"]
            for i, name in enumerate(["Longjing 500g", "Oolong 250g", "Green tea gift box"])
        ]

    def _user(self, api, admin, username, role):
        body = {"username": username, "display_name": username, "role": role,
                "password": password(username), "teams": [self.team]}
        uid = api.ok("POST", "/v1/users", admin, body)["user"]["id"]
        if role == "manager":
            api.ok("PUT", f"/v1/teams/{self.team}/managers/{uid}", admin)
        return uid


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("server"))
    yield s
    s.close()


@pytest.fixture(scope="session")
def org(server):
    return Org(server)
