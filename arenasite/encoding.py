"""Requests whose text the site cannot store or look up are refused at the door with a 400.

Form bodies must be UTF-8: Django reads a urlencoded body that is not UTF-8 as ISO-8859-1
(raw bytes) or puts U+FFFD for invalid percent-escapes, so a form would quietly store
mojibake. JSON bodies need no check here: the API's parser refuses invalid UTF-8 with a
400 of its own.

No NUL in the path or the query string: PostgreSQL text cannot hold one, so a NUL that
reaches a lookup (a battle id, an admin filter's `?status=%00`) makes the driver raise and
the request end as a 500. No URL of the site has a use for one, so it is refused before
any view runs, in JSON under /api/ like every API error.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from django.http import HttpResponseBadRequest, JsonResponse


class Utf8FormBodyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method in ("POST", "PUT", "PATCH") and request.content_type == "application/x-www-form-urlencoded":
            try:
                unquote_to_bytes(request.body.replace(b"+", b" ")).decode("utf-8")
            except UnicodeDecodeError:
                return HttpResponseBadRequest(
                    "The form data is not valid UTF-8 text.", content_type="text/plain; charset=utf-8"
                )
        return self.get_response(request)


NUL_REFUSED = "The address contains a NUL character, which no page or API endpoint accepts."


class NulInUrlMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # The path arrives decoded (%00 is already "\x00"); the query string is still raw.
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path or "%00" in query or "\x00" in query:
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": NUL_REFUSED}, status=400)
            return HttpResponseBadRequest(NUL_REFUSED, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
