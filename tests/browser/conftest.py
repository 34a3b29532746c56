"""The site under an ASGI server (uvicorn) for the browser tests that need the answers' event
streams: the live_server fixture of pytest-django is a WSGI server, which serves an async
streaming response only once it has ended (Django gathers the whole body first)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application
from django.test.utils import modify_settings

from ..support.processes import free_port


@dataclass(frozen=True)
class Site:
    url: str


@pytest.fixture
def asgi_live_server(transactional_db) -> Iterator[Site]:
    """The site in this process (so on the test's database, with its settings and patches),
    served by uvicorn on a loopback port from a thread of its own; static files from the apps."""
    port = free_port()
    config = uvicorn.Config(
        ASGIStaticFilesHandler(get_asgi_application()),
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="warning",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="asgi-live-server", daemon=True)
    with modify_settings(ALLOWED_HOSTS={"append": "127.0.0.1"}):
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the ASGI test server did not start")
            time.sleep(0.05)
        try:
            yield Site(f"http://127.0.0.1:{port}")
        finally:
            server.should_exit = True
            thread.join(10)
