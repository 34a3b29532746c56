"""Project-wide API conventions: every error is JSON with a "detail" key."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, parsers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .mfa import withheld_reason


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "request_too_large"


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        # Django would answer an HTML 400 page; the API answers JSON, with the fitting status.
        exc = RequestTooLarge(f"The request body is limited to {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        # Field errors stay machine-readable under "errors"; "detail" is always a sentence.
        errors = response.data
        if isinstance(errors, list):
            errors = {"non_field_errors": errors}
        response.data = {"detail": _first_message(errors), "errors": errors}
    elif not (isinstance(response.data, dict) and "detail" in response.data):
        response.data = {"detail": response.data}
    request = context.get("request")
    if response.status_code in (403, 404) and request is not None and (reason := withheld_reason(request.user)):
        # Staff acting without their powers (no second factor) learn why they were refused.
        response.data["detail"] = f"{response.data['detail']} {reason}"
    return response


def _first_message(errors) -> str:
    if isinstance(errors, dict):
        for field, value in errors.items():
            message = _first_message(value)
            return message if field == "non_field_errors" else f"{field}: {message}"
    if isinstance(errors, list) and errors:
        return _first_message(errors[0])
    return str(errors) or "Invalid input."


@csrf_exempt
def api_not_found(request, *args, **kwargs):
    """Unknown paths under /api/ answer in JSON, like the rest of the API.

    Exempt from CSRF: a plain Django view would otherwise answer a POST from an API client
    (a bearer token, no CSRF cookie) with Django's HTML "CSRF verification failed" page.
    It changes nothing whatever the method, so there is nothing for a forged request to do.
    """
    detail = f"No API endpoint at {request.path}."
    if not request.path.endswith("/"):
        detail += " API paths end with a slash."
    return JsonResponse({"detail": detail}, status=status.HTTP_404_NOT_FOUND)


def json_error(detail: str, status_code: int, **extra) -> Response:
    return Response({"detail": detail, **extra}, status=status_code)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, but a body nested too deeply to decode is a 400, not a 500.

    DRF turns only ValueError into a ParseError; json raises RecursionError for deeply
    nested arrays or objects, such as a body of ten thousand "[".
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - the body is nested too deeply.") from None
