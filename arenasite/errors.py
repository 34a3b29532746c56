"""The site's answer to an unexpected error, and to the database being out of reach.

Django turns an exception from any layer (a view, DRF, a middleware reading the session)
into the `handler500` response. When the exception is the database being unreachable (a
restart, a failover, a full connection table), the honest answer is 503 with Retry-After:
nothing was written (every write is one transaction that never committed), the request
may be sent again, and the next request opens a fresh connection by itself. Anything else
is a 500. API paths answer JSON with "detail", as every API error does; pages answer HTML.
"""

from __future__ import annotations

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader

# Seconds a client is asked to wait before trying again while the database is away.
RETRY_AFTER_SECONDS = 5

DATABASE_UNAVAILABLE = "The service is briefly unavailable (its database cannot be reached); nothing was saved."
SERVER_ERROR = "Something went wrong on our side; nothing was saved."


def database_unavailable(exc: BaseException | None) -> bool:
    """Whether the exception (or one it was raised from) says the database could not be reached."""
    while exc is not None:
        if isinstance(exc, (OperationalError, InterfaceError)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def server_error(request: HttpRequest) -> HttpResponse:
    unavailable = database_unavailable(sys.exc_info()[1])
    status, detail = (503, DATABASE_UNAVAILABLE) if unavailable else (500, SERVER_ERROR)
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": detail}, status=status)
    else:
        # Rendered without a request context: the context processors would read the session
        # and the user, which need the database that just failed.
        body = loader.get_template("error.html").render({"status": status, "detail": detail})
        response = HttpResponse(body, status=status)
    if unavailable:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
