"""Endpoint health checks against a real HTTP server on loopback speaking chat completions."""

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine

from arenasite import clock
from providers import health
from providers.models import ArenaModel

from ..conftest import make_model

pytestmark = pytest.mark.django_db


class FakeProvider(BaseHTTPRequestHandler):
    """Answers like an OpenAI-compatible server while `healthy`, else with a 503."""

    healthy = True
    seen: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.path, self.headers.get("Authorization"), body))
        if type(self).healthy:
            payload = {
                "id": "x",
                "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "p"}, "finish_reason": "length"}],
            }
            self._send(200, payload)
        else:
            self._send(503, {"error": "overloaded"})

    def _send(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    FakeProvider.healthy, FakeProvider.seen = True, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeProvider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1", FakeProvider
    server.shutdown()
    server.server_close()


@pytest.fixture
def listed(provider_a, endpoint):
    base_url, _ = endpoint
    return make_model(
        provider_a,
        ArenaModel.Status.LISTED,
        endpoint_base_url=base_url,
        endpoint_model_id="m-1",
        endpoint_api_key="sk-test",
    )


def test_a_healthy_endpoint_is_called_with_the_stored_key(listed, endpoint):
    _, server = endpoint
    assert health.check_pool() == {"checked": 1, "ok": 1, "failed": 0}
    path, auth, body = server.seen[0]
    assert path == "/v1/chat/completions"
    assert auth == "Bearer sk-test"
    assert body["model"] == "m-1" and body["max_tokens"] == 1
    listed.refresh_from_db()
    assert listed.endpoint_last_ok_at is not None and listed.endpoint_offline_since is None


def test_a_listed_model_failing_inside_its_window_is_reported(listed, endpoint, caplog):
    endpoint[1].healthy = False
    health.check_pool()
    listed.refresh_from_db()
    assert listed.endpoint_offline_since is not None
    assert "HTTP 503" in listed.endpoint_last_error
    assert list(ArenaModel.objects.offline_in_listing_window(clock.now())) == [listed]
    assert "offline inside its 14-day window" in caplog.text
    assert listed.retirement_candidate_since is None


def test_offline_past_the_grace_period_after_the_window_makes_a_retirement_candidate(listed, endpoint):
    endpoint[1].healthy = False
    window_end = listed.listed_at + timedelta(days=14)
    health.check_pool()  # offline from day 0, inside the window: the grace period starts at its end
    with time_machine.travel(window_end + timedelta(days=7) - timedelta(minutes=1), tick=False):
        health.check_pool()
        listed.refresh_from_db()
        assert listed.retirement_candidate_since is None
        assert not ArenaModel.objects.offline_in_listing_window(clock.now()).exists()
    with time_machine.travel(window_end + timedelta(days=7), tick=False):
        health.check_pool()
        health.check_pool()
    listed.refresh_from_db()
    assert listed.retirement_candidate_since == window_end + timedelta(days=7)
    assert listed.status == ArenaModel.Status.LISTED, "candidates are for staff to retire, not retired"


def test_coming_back_online_clears_the_record(listed, endpoint):
    endpoint[1].healthy = False
    health.check_pool()
    endpoint[1].healthy = True
    health.check_pool()
    listed.refresh_from_db()
    assert listed.endpoint_offline_since is None and listed.endpoint_last_error == ""


def test_an_unreachable_endpoint_is_a_failure_not_a_crash(provider_a):
    model = make_model(
        provider_a, ArenaModel.Status.INITIAL_RATING, endpoint_base_url="http://127.0.0.1:9/v1", endpoint_model_id="m"
    )
    assert health.check_pool()["failed"] == 1
    model.refresh_from_db()
    assert "ConnectError" in model.endpoint_last_error


def test_models_outside_the_pool_and_demo_models_need_no_network(provider_a):
    make_model(provider_a, ArenaModel.Status.SUBMITTED, endpoint_base_url="http://127.0.0.1:9/v1")
    demo = make_model(provider_a, ArenaModel.Status.LISTED, is_demo=True)
    assert health.check_pool() == {"checked": 1, "ok": 1, "failed": 0}
    demo.refresh_from_db()
    assert demo.endpoint_last_ok_at is not None


def test_models_without_an_endpoint_are_not_probed(provider_a):
    imported = make_model(provider_a, ArenaModel.Status.LISTED)  # like imported history: no endpoint
    assert health.check_pool() == {"checked": 0, "ok": 0, "failed": 0}
    imported.refresh_from_db()
    assert imported.endpoint_offline_since is None
