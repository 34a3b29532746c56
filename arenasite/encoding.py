"""Form bodies must be UTF-8: refuse the rest with a clear 400.

Django reads a urlencoded body that is not UTF-8 as ISO-8859-1 (raw bytes) or puts U+FFFD
for invalid percent-escapes, so a form would quietly store mojibake. JSON bodies need no
check here: the API's parser refuses invalid UTF-8 with a 400 of its own.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from django.http import HttpResponseBadRequest


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
