"""What several apps' admins share."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.template.response import TemplateResponse


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


class DecisionForm(forms.Form):
    """The reason staff give for a decision: required to refuse or revoke, optional to approve.

    `reason_help` says who reads the reason; `reason_max_length` bounds it where the place it
    is kept does."""

    reason_help = ""
    reason_max_length: int | None = None

    def __init__(self, *args, required: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reason"] = forms.CharField(
            widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
            max_length=self.reason_max_length,
            required=required,
            help_text=self.reason_help,
        )


class ConfirmThenDecideMixin:
    """Admin actions (`decision_action`) that first show the selected rows on a confirmation
    page asking for a reason, then decide each row with it.

    The model admin sets `decision_form` (a DecisionForm), `decision_template` and
    `decision_title` (with `{verb}`), and defines `has_decide_permission(request)`,
    `decision_context(request, queryset)` (the rows, and whatever else its page shows) and
    `decide(request, obj, approve=, reason=)`, which calls the service and reports the outcome.
    """

    decision_form: type[DecisionForm] = DecisionForm
    decision_template: str
    decision_title: str

    def confirm_or_decide(self, request, queryset, *, approve: bool, verb: str):
        form = self.decision_form(request.POST if "confirm" in request.POST else None, required=not approve)
        if form.is_bound and form.is_valid():
            for obj in queryset:
                self.decide(request, obj, approve=approve, reason=form.cleaned_data["reason"])
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": self.decision_title.format(verb=verb),
            "opts": self.model._meta,
            "verb": verb,
            "action_name": verb.lower(),
            "form": form,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            **self.decision_context(request, queryset),
        }
        return TemplateResponse(request, self.decision_template, context)

    def decision_context(self, request, queryset) -> dict:
        raise NotImplementedError

    def decide(self, request, obj, *, approve: bool, reason: str) -> None:
        raise NotImplementedError


def decision_action(verb: str, description: str, *, approve: bool):
    """An admin action of a ConfirmThenDecideMixin admin, named after its verb ("Approve" ->
    "approve"), for staff with the admin's decide permission."""

    def run(modeladmin, request, queryset):
        return modeladmin.confirm_or_decide(request, queryset, approve=approve, verb=verb)

    run.__name__ = verb.lower()
    return admin.action(description=description, permissions=["decide"])(run)
