"""What the OpenAPI schema says about every operation at once, rather than view by view.

drf-spectacular documents the responses a view declares. The 401 an operation answers to a
caller with no credentials (or a token that is unknown, expired or revoked) is declared by no
view: it follows from the view's permission and authentication classes. A generated client
needs it in the schema to tell "sign in again" from "not allowed", so the hook below adds it
to every operation that requires authentication, from those classes themselves.
"""

from __future__ import annotations

import copy

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.drainage import warn
from rest_framework.test import APIRequestFactory

# The project's error body (arenasite.api.exception_handler): every API error has "detail".
ERROR_COMPONENT = "Error"
ERROR_SCHEMA = {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}

UNAUTHORISED = {
    "description": "No credentials, or a token that is unknown, expired or revoked: sign in or send a valid "
    "`Authorization: Bearer` token.",
    "headers": {
        "WWW-Authenticate": {"schema": {"type": "string"}, "description": "The scheme to authenticate with."},
    },
    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}}},
}


def requires_authentication(view, method: str, path: str) -> bool:
    """Whether DRF answers an anonymous `method` request to `view` with 401.

    The view's own permission classes are asked, with an anonymous request, as DRF asks them
    before the view runs. A refusal is a 401 only when the view's first authentication class
    names a scheme (WWW-Authenticate); DRF answers 403 otherwise (session authentication
    alone, or none).
    """
    request = view.initialize_request(APIRequestFactory().generic(method, path))
    request.user, request.auth = AnonymousUser(), None
    if not request.authenticators or not request.authenticators[0].authenticate_header(request):
        return False
    view.request = request
    return any(not permission.has_permission(request, view) for permission in view.get_permissions())


def declare_unauthorised(result, generator, request, public):
    """drf-spectacular postprocessing hook: a 401 with the error body on every operation that
    requires authentication, and on no other."""
    paths = result.get("paths", {})
    declared = False
    for path, _regex, method, callback in generator.endpoints or []:
        view = generator.create_view(callback, method)
        path = generator.coerce_path(path, method, view)
        operation = paths.get(path, {}).get(method.lower())
        if operation is None:  # left out of this schema (another prefix, or not for this caller)
            continue
        try:
            needed = requires_authentication(view, method, path)
        except Exception as exc:  # a permission that cannot judge a request without a real object
            warn(f"could not tell whether {method} {path} requires authentication: {exc!r}")
            continue
        if needed:
            responses = operation.setdefault("responses", {})
            responses.setdefault("401", copy.deepcopy(UNAUTHORISED))
            operation["responses"] = dict(sorted(responses.items()))
            declared = True
    if declared:
        result.setdefault("components", {}).setdefault("schemas", {}).setdefault(ERROR_COMPONENT, ERROR_SCHEMA)
    return result
