"""Identity terms in admin: staff decide which words exclude votes, and re-judge votes after.

The list shows every term with its state, where it came from and whom it identifies.
Terms are proposed from the pool's names (the button "Propose terms from the pool", and
by itself when a model is admitted) or added by hand (an alias); staff with
`battles.review_identityterm` approve or refuse them and re-judge votes, each through
battles/identity_terms.py. The preview counts how many recent votes each term would have
excluded, before anyone approves it. Nothing here edits a term in place or deletes one: a
term no longer wanted is refused, and the log of decisions stays whole.
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from arenasite import clock

from . import identity_terms
from .identity import normalise_term, term_refusal
from .models import IdentityTerm


class IdentityTermAddForm(forms.ModelForm):
    class Meta:
        model = IdentityTerm
        fields = ["term", "provider", "arena_model", "note"]

    def clean_term(self) -> str:
        term = normalise_term(self.cleaned_data["term"])
        refusal = term_refusal(term)
        if refusal:
            raise ValidationError(refusal)
        if IdentityTerm.objects.filter(term=term).exists():
            raise ValidationError(f"{term!r} is already an identity term.")
        return term


class RejudgeForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text="Logged with your name and the counts in the audit log.",
    )
    days = forms.IntegerField(
        min_value=0,
        initial=identity_terms.PREVIEW_DAYS,
        help_text="Votes cast in the last this many days; 0 for every vote.",
    )
    every_exclusion = forms.BooleanField(
        required=False,
        label="Every identity exclusion",
        help_text="Read again every vote excluded as identity_revealed, whatever it named, and every counting "
        "vote that any approved term names, not only those naming the selected terms.",
    )


@admin.register(IdentityTerm)
class IdentityTermAdmin(admin.ModelAdmin):
    list_display = ["term", "state", "source", "identifies", "decided_by", "decided_at", "proposed_at"]
    list_filter = ["state", "source"]
    list_select_related = ["provider", "arena_model", "decided_by"]
    search_fields = ["term"]
    raw_id_fields = ["provider", "arena_model"]
    actions = ["approve", "refuse", "preview", "rejudge"]
    fields = [
        "term",
        "state",
        "source",
        "provider",
        "arena_model",
        "note",
        "proposed_at",
        "decided_by",
        "decided_at",
        "recent_votes",
    ]
    readonly_fields = ["recent_votes"]

    def has_review_permission(self, request) -> bool:
        return request.user.has_perm("battles.review_identityterm")

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) or self.has_review_permission(request)

    def has_add_permission(self, request):
        return self.has_review_permission(request)

    def has_change_permission(self, request, obj=None):
        return False  # decisions are actions, through battles/identity_terms.py

    def has_delete_permission(self, request, obj=None):
        return False  # a term no longer wanted is refused

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = IdentityTermAddForm
            kwargs["fields"] = IdentityTermAddForm.Meta.fields
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        return IdentityTermAddForm.Meta.fields if obj is None else self.fields

    def save_model(self, request, obj, form, change):
        created = identity_terms.identity_term_add(
            term=obj.term, actor=request.user, provider=obj.provider, arena_model=obj.arena_model, note=obj.note
        )
        obj.pk, obj.source, obj.state = created.pk, created.source, created.state
        obj._state.adding = False

    @admin.display(description="identifies")
    def identifies(self, term: IdentityTerm) -> str:
        if term.arena_model_id:
            return f"{term.arena_model} ({term.provider})" if term.provider_id else str(term.arena_model)
        return str(term.provider) if term.provider_id else "—"

    @admin.display(description=f"votes of the last {identity_terms.PREVIEW_DAYS} days it would exclude")
    def recent_votes(self, term: IdentityTerm) -> str:
        if term.pk is None:
            return "—"
        return _preview_sentence(identity_terms.identity_term_preview([term.term])[0])

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_propose": self.has_review_permission(request)}
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        return [
            path(
                "propose/",
                self.admin_site.admin_view(require_POST(self.propose_view)),
                name="battles_identityterm_propose",
            ),
            *super().get_urls(),
        ]

    def propose_view(self, request):
        """The changelist's button: propose the pool's names (and ARENA_IDENTITY_WORDS) as terms."""
        if not self.has_review_permission(request):
            raise PermissionDenied
        created = identity_terms.identity_terms_propose_pool()
        self.message_user(
            request,
            f"{created} new term(s) proposed from the pool's names; common words among them were refused."
            if created
            else "Every name in the pool is already a term (proposed, approved or refused).",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:battles_identityterm_changelist"))

    # -- actions ---------------------------------------------------------------------------------

    @admin.action(description="Approve: selected terms exclude the votes that name them", permissions=["review"])
    def approve(self, request, queryset):
        self._decide(request, queryset, approve=True)

    @admin.action(description="Refuse: selected terms exclude no vote", permissions=["review"])
    def refuse(self, request, queryset):
        self._decide(request, queryset, approve=False)

    def _decide(self, request, queryset, *, approve: bool) -> None:
        done = 0
        for term in queryset:
            try:
                identity_terms.identity_term_decide(term_id=term.pk, approve=approve, actor=request.user)
            except identity_terms.TermRefused as exc:
                self.message_user(request, f"{term.term}: {exc}", messages.ERROR)
                continue
            done += 1
        if done:
            self.message_user(
                request,
                f"{done} term(s) {'approved' if approve else 'refused'}. New votes are judged by them now; "
                "votes already judged change when you re-judge them (the action 'Re-judge votes').",
                messages.SUCCESS,
            )

    @admin.action(description=f"Preview: votes of the last {identity_terms.PREVIEW_DAYS} days each would exclude")
    def preview(self, request, queryset):
        previews = identity_terms.identity_term_preview(queryset.values_list("term", flat=True))
        states = dict(queryset.values_list("term", "state"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Preview: recent votes each term would exclude",
            "opts": self.model._meta,
            "days": identity_terms.PREVIEW_DAYS,
            "rows": [(p, IdentityTerm.State(states[p.term]).label, f"{p.share:.1%}") for p in previews],
            "recent": previews[0].recent if previews else 0,
        }
        return TemplateResponse(request, "admin/battles/identityterm/preview.html", context)

    @admin.action(description="Re-judge votes that name the selected terms", permissions=["review"])
    def rejudge(self, request, queryset):
        form = RejudgeForm(request.POST if "confirm" in request.POST else None)
        if form.is_bound and form.is_valid():
            days = form.cleaned_data["days"]
            since = clock.now() - timedelta(days=days) if days else None
            terms = None if form.cleaned_data["every_exclusion"] else list(queryset.values_list("term", flat=True))
            done = identity_terms.identity_votes_rejudge(
                terms=terms, since=since, actor=request.user, reason=form.cleaned_data["reason"]
            )
            others = ", ".join(f"{n} {reason}" for reason, n in done.other_reasons.items())
            self.message_user(
                request,
                f"Re-judged {done.read} vote(s): {done.excluded} newly excluded, {done.lifted} exclusion(s) lifted "
                f"({done.counting_again} count again{'; ' + others if others else ''}). "
                "The next rating run counts them.",
                messages.SUCCESS,
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Re-judge votes by the approved identity terms",
            "opts": self.model._meta,
            "terms": queryset,
            "form": form,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "cancel_url": reverse("admin:battles_identityterm_changelist"),
        }
        return TemplateResponse(request, "admin/battles/identityterm/rejudge.html", context)


def _preview_sentence(preview: identity_terms.TermPreview) -> str:
    return (
        f"{preview.would_exclude} of {preview.recent} ({preview.share:.1%}); "
        f"{preview.counting} of them count now and would be excluded if it were approved"
    )
