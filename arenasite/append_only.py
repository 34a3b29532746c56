"""Logs that are only ever added to: the audit log, the lifecycle log, kept ratings, policy changes.

A row is the record something rests on (who did what, which rating a model left with, which
rule applied when), so a mistake is corrected by a new row, never by editing an old one.
Changing or deleting a row is refused in Python, row by row and in bulk. (Deleting a row a
foreign key points from, e.g. a user, still goes through the deletion collector, which sets
SET_NULL columns without a queryset; that is intended.)
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db import models


def _refused(model: type[models.Model], what: str) -> PermissionDenied:
    return PermissionDenied(f"{model._meta.verbose_name_plural.capitalize()} are append-only: they cannot be {what}.")


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise _refused(self.model, "changed")

    def delete(self):
        raise _refused(self.model, "deleted")


class AppendOnlyModel(models.Model):
    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise _refused(type(self), "changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise _refused(type(self), "deleted")
