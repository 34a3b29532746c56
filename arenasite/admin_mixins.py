"""What several apps' admins share."""

from __future__ import annotations


class ReadOnlyAdminMixin:
    """For rows only the system writes (logs, votes, built releases, rating runs): staff
    read them in admin, and no one adds, edits or deletes one there, superusers included.
    Works for model admins and inlines alike."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
