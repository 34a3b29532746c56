"""A client that speaks HTTP to a real server on loopback, as a browser or a script does."""

from __future__ import annotations

import http.cookiejar
import json
import time
import urllib.error
import urllib.request

PROMPT = "Explain binary search to a new programmer."


class Voter:
    """A browser-like client: its own cookies, JSON in and out, any status answered."""

    def __init__(self, base_url: str, token: str | None = None):
        self.base_url = base_url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def call(self, path: str, body: dict | None = None) -> tuple[int, dict | str, dict]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, headers=self.headers)
        try:
            with self.opener.open(request, timeout=30) as response:
                status, raw, headers = response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            status, raw, headers = error.code, error.read(), dict(error.headers)
        text = raw.decode()
        is_json = headers.get("Content-Type", "").startswith("application/json")
        return status, (json.loads(text) if is_json else text), headers

    def battle_answered(self, timeout: float = 15.0) -> str:
        status, battle, _ = self.call("/api/v1/battles/", {"prompt": PROMPT})
        assert status == 201, battle
        deadline = time.monotonic() + timeout
        while battle["status"] == "answering":
            assert time.monotonic() < deadline, battle
            time.sleep(0.02)
            battle = self.call(f"/api/v1/battles/{battle['id']}/")[1]
        assert battle["status"] == "ready", battle
        return battle["id"]
