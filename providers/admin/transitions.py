"""Moving models through their lifecycle from the admin: changelist actions and the buttons of a
model's page both show a confirmation page that asks for the reason, then call the lifecycle
service (providers/lifecycle.py) for each model, which checks every rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from providers.lifecycle import (
    MOVES,
    REASON_MAX_LENGTH,
    REASON_REQUIRED,
    STAFF_RETIREMENT_RULES,
    Action,
    TransitionRefused,
    preview,
    transition,
)
from providers.models import ArenaModel, RetirementRule

ChangelistAction = Callable[["TransitionAdmin", HttpRequest, "QuerySet[ArenaModel]"], TemplateResponse | None]


class ReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        max_length=REASON_MAX_LENGTH,
        required=False,
        help_text="Kept in the model's lifecycle log.",
    )
    rule = forms.ChoiceField(
        choices=[(rule.value, rule.label) for rule in RetirementRule if rule in STAFF_RETIREMENT_RULES],
        initial=RetirementRule.STAFF_DECISION,
        required=False,
        help_text="The retirement rule applied; shown publicly in the model registry. A rule other than a staff "
        "decision is checked: the model must meet it.",
    )

    def __init__(self, *args: Any, required: bool, with_rule: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reason"].required = required
        if not with_rule:
            del self.fields["rule"]


def changelist_action(action: Action) -> ChangelistAction:
    """An admin action that asks for the reason on a confirmation page, then applies."""

    def run(
        modeladmin: TransitionAdmin, request: HttpRequest, queryset: QuerySet[ArenaModel]
    ) -> TemplateResponse | None:
        return modeladmin.confirm_or_apply(request, queryset, action)

    run.__name__ = action.value.replace("-", "_")
    return admin.action(description=f"{action.label}…", permissions=["transition"])(run)


class TransitionAdmin(admin.ModelAdmin):
    """The lifecycle's actions on the model admin: one changelist action per lifecycle action,
    and a page per model and action behind the change page's buttons, for staff with the
    transition permission."""

    actions = [changelist_action(action) for action in Action]

    def has_transition_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("providers.transition_arenamodel")

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.transition_view)
        return [
            path("<int:object_id>/transition/<str:action>/", view, name="providers_arenamodel_transition"),
            *super().get_urls(),
        ]

    def transition_view(self, request: HttpRequest, object_id: int, action: str) -> HttpResponse:
        """The change page's buttons: one model, one action, a reason."""
        if action not in Action.values:
            self.message_user(request, f"Unknown action {action!r}.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:providers_arenamodel_changelist"))
        if not self.has_transition_permission(request):
            self.message_user(
                request, "You lack the permission to move models through their lifecycle.", messages.ERROR
            )
            return HttpResponseRedirect(reverse("admin:providers_arenamodel_change", args=[object_id]))
        model = get_object_or_404(ArenaModel, pk=object_id)
        if not self.has_view_or_change_permission(request, model):
            raise PermissionDenied
        change_url = reverse("admin:providers_arenamodel_change", args=[model.pk])
        response = self.confirm_or_apply(
            request, ArenaModel.objects.filter(pk=model.pk), Action(action), cancel_url=change_url
        )
        return response or HttpResponseRedirect(change_url)

    def confirm_or_apply(
        self, request: HttpRequest, queryset: QuerySet[ArenaModel], action: Action, cancel_url: str = ""
    ) -> TemplateResponse | None:
        form = ReasonForm(
            request.POST if "confirm" in request.POST else None,
            required=action in REASON_REQUIRED,
            with_rule=action == Action.RETIRE,
        )
        if form.is_bound and form.is_valid():
            self._apply(request, queryset, action, form.cleaned_data["reason"], form.cleaned_data.get("rule", ""))
            return None
        match = request.resolver_match
        chosen_rule = request.POST.get("rule", "") if action == Action.RETIRE else ""
        context = {
            **self.admin_site.each_context(request),
            "title": f"{action.label}: confirm",
            "opts": self.model._meta,
            "action": action,
            "action_name": action.value.replace("-", "_"),
            "target": ArenaModel.Status(MOVES[action][1]).label,
            "models": [
                (model, preview(model_id=model.pk, action=action, actor=_staff_member(request), rule=chosen_rule))
                for model in queryset.select_related("provider")
            ],
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "from_changelist": match is not None and match.url_name == "providers_arenamodel_changelist",
            "cancel_url": cancel_url or request.get_full_path(),
        }
        return TemplateResponse(request, "admin/providers/arenamodel/transition_confirm.html", context)

    def _apply(
        self, request: HttpRequest, queryset: QuerySet[ArenaModel], action: Action, reason: str, rule: str
    ) -> None:
        for model in queryset:
            try:
                outcome = transition(
                    model_id=model.pk, action=action, actor=_staff_member(request), reason=reason, rule=rule
                )
            except TransitionRefused as exc:
                self.message_user(request, f"{model.name}: refused ({exc.rule}): {exc.detail}", messages.ERROR)
                continue
            level = messages.SUCCESS if outcome.changed else messages.INFO
            self.message_user(request, outcome.describe(), level)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = extra_context or {}
        obj = self.get_object(request, object_id)
        if obj is not None and self.has_transition_permission(request):
            extra_context["transitions"] = [a for a in Action if obj.status in MOVES[a][0]]
        return super().change_view(request, object_id, form_url, extra_context)


def _staff_member(request: HttpRequest) -> User:
    """Who acts: the admin site lets only signed-in staff in."""
    if isinstance(request.user, AnonymousUser):
        raise PermissionDenied("Sign in to act on models.")
    return request.user
