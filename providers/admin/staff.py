"""The account an admin request acts as."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def staff_user(request: HttpRequest) -> User:
    """The staff member acting: the admin site lets no anonymous request reach its pages."""
    user = request.user
    if isinstance(user, AnonymousUser):
        raise PermissionDenied
    return user
