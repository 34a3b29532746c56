"""Battles, votes and served shares in admin: for reading and auditing, not for editing.

A battle is what voters said and models answered, and a vote is what a voter chose, so
neither is changed by hand here. Flagged voters have a review flow of their own:
confirm, clear or ban, each through battles/anomaly_review.py and logged with who and why.
The tables hold millions of rows: counts are not run on every page
(`show_full_result_count`), related names are joined, and the lists filter on indexed
columns.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from arenasite.admin_mixins import ReadOnlyAdminMixin

from . import anomaly_review, budget_admin, identity_admin  # noqa: F401  (they register budgets and identity terms)
from .models import Battle, FlaggedVoter, SamplingShare, Vote, VoterDecision


class ReadOnlyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    show_full_result_count = False


class VoteInline(admin.StackedInline):
    model = Vote
    fields = ["winner", "excluded_reason", "judge", "created_at"]
    readonly_fields = fields
    can_delete = False
    extra = 0

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Battle)
class BattleAdmin(ReadOnlyAdmin):
    list_display = ["question_id", "model_a", "model_b", "anony", "status", "turn", "language", "source", "created_at"]
    list_filter = ["status", "anony", "source", "in_release_pool"]
    list_select_related = ["model_a", "model_b"]
    search_fields = ["=question_id"]
    date_hierarchy = "created_at"
    inlines = [VoteInline]
    fieldsets = [
        (None, {"fields": ["question_id", "model_a", "model_b", "anony", "source", "created_at", "in_release_pool"]}),
        ("Answering", {"fields": ["status", "state_a", "state_b", "failure", "turn", "turn_started_at"]}),
        ("Tags", {"fields": ["language", "prompt_chars", "prompt_hash", "judge", "moderation"]}),
        ("Conversation", {"fields": ["conversation"]}),
    ]
    readonly_fields = [f for _, options in fieldsets for f in options["fields"]]

    @admin.display(description="Moderation")
    def moderation(self, battle: Battle) -> str:
        result = battle.openai_moderation
        if not result:
            return "—"
        flagged = [name for name, hit in result.get("categories", {}).items() if hit]
        return ("flagged: " + ", ".join(flagged)) if result.get("flagged") else "not flagged"

    @admin.display(description="Conversation (A | B)")
    def conversation(self, battle: Battle) -> str:
        # Everything here is user or model text: format_html escapes it.
        rows = zip(battle.conversation_a[0::2], battle.conversation_a[1::2], battle.conversation_b[1::2], strict=False)
        return format_html(
            '<table class="battle-conversation">{}</table>',
            format_html_join(
                "",
                '<tr><td colspan="2" style="white-space:pre-wrap"><strong>User:</strong> {}</td></tr>'
                '<tr><td style="white-space:pre-wrap;vertical-align:top">{}</td>'
                '<td style="white-space:pre-wrap;vertical-align:top">{}</td></tr>',
                ((asked["content"], a["content"], b["content"]) for asked, a, b in rows),
            ),
        )


@admin.register(Vote)
class VoteAdmin(ReadOnlyAdmin):
    list_display = ["battle", "winner", "model_a", "model_b", "anony", "counted", "excluded_reason", "created_at"]
    list_filter = ["excluded_reason", "winner", "anony"]
    list_select_related = ["battle", "model_a", "model_b"]
    search_fields = ["=judge", "=battle__question_id"]
    date_hierarchy = "created_at"
    fields = ["battle", "winner", "model_a", "model_b", "anony", "excluded_reason", "judge", "created_at"]
    readonly_fields = fields

    @admin.display(boolean=True, description="Counts")
    def counted(self, vote: Vote) -> bool:
        return vote.counts


@admin.register(SamplingShare)
class SamplingShareAdmin(ReadOnlyAdmin):
    list_display = ["day", "arena_model", "battles"]
    list_filter = ["day"]
    list_select_related = ["arena_model"]
    date_hierarchy = "day"


class DecisionForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text="Logged with your name; say what you looked at.",
    )


class VoterDecisionInline(admin.TabularInline):
    model = VoterDecision
    fields = ["created_at", "decision", "from_state", "to_state", "actor", "reason", "votes_changed"]
    readonly_fields = fields
    can_delete = False
    extra = 0

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# How many of the voter's votes the review page lists; the vote list has them all.
REVIEW_VOTES_SHOWN = 100


@admin.register(FlaggedVoter)
class FlaggedVoterAdmin(ReadOnlyAdmin):
    """Voters the anomalous-voter test flagged: their evidence, their votes, and what removing
    them does to each model's rating; staff confirm, clear or ban, with a reason."""

    list_display = ["short_judge", "state", "votes_tested", "evidence", "direction", "flagged_at", "decided_at"]
    list_filter = ["state", "direction"]
    search_fields = ["=judge"]
    date_hierarchy = "flagged_at"
    ordering = ["-flagged_at"]
    inlines = [VoterDecisionInline]
    actions = ["confirm", "clear", "ban"]
    fieldsets = [
        (None, {"fields": ["judge", "state", "decide_links"]}),
        ("Evidence", {"fields": ["votes_tested", "evidence", "direction", "alpha", "flagged_at", "tested_at"]}),
        ("Effect of removing the voter on each model's rating", {"fields": ["rating_effect"]}),
        ("Votes", {"fields": ["votes"]}),
    ]
    readonly_fields = [f for _, options in fieldsets for f in options["fields"]]

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) or self.has_review_permission(request)

    def has_review_permission(self, request):
        return request.user.has_perm("battles.review_flaggedvoter")

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # the decisions log hangs on these rows
        return actions

    @admin.display(description="judge", ordering="judge")
    def short_judge(self, voter: FlaggedVoter) -> str:
        return voter.judge[:16] + "…"

    @admin.display(description="evidence", ordering="statistic")
    def evidence(self, voter: FlaggedVoter) -> str:
        return f"{voter.statistic:.3g} (threshold {1 / voter.alpha:g})"

    @admin.display(description="review")
    def decide_links(self, voter: FlaggedVoter) -> str:
        return format_html_join(
            " ",
            '<a class="button" href="{}">{}</a>',
            (
                (reverse("admin:battles_flaggedvoter_decide", args=[voter.pk, decision]), label)
                for decision, label in VoterDecision.Decision.choices
                if anomaly_review.DECISION_STATES[decision] != voter.state
            ),
        )

    @admin.display(description="model: rating with the voter → without (rank)")
    def rating_effect(self, voter: FlaggedVoter) -> str:
        try:
            rows = anomaly_review.rating_effect(voter)
        except ValueError as exc:
            return f"Cannot be computed on today's votes: {exc}"
        if not rows:
            return "The voter has no anonymous votes that count or were excluded for the flag."
        return format_html(
            "<table><thead><tr><th>Model</th><th>Voter's votes</th><th>With</th><th>Without</th>"
            "<th>Change</th><th>Rank with → without</th></tr></thead><tbody>{}</tbody></table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} → {}</td></tr>",
                (
                    (
                        row.model,
                        row.votes,
                        _elo(row.with_voter),
                        _elo(row.without_voter),
                        "—" if row.change is None else f"{row.change:+.1f}",
                        row.rank_with or "—",
                        row.rank_without or "—",
                    )
                    for row in rows
                ),
            ),
        )

    @admin.display(description="votes (oldest first)")
    def votes(self, voter: FlaggedVoter) -> str:
        shown = anomaly_review.voter_votes(voter)[:REVIEW_VOTES_SHOWN]
        all_url = reverse("admin:battles_vote_changelist") + f"?q={voter.judge}"
        return format_html(
            '<p><a href="{}">All of the voter\'s votes</a> (the first {} are below).</p>'
            "<table><thead><tr><th>When</th><th>Battle</th><th>Model A</th><th>Model B</th><th>Winner</th>"
            "<th>Anonymous</th><th>Excluded</th></tr></thead><tbody>{}</tbody></table>",
            all_url,
            REVIEW_VOTES_SHOWN,
            format_html_join(
                "",
                '<tr><td>{}</td><td><a href="{}">{}</a></td>'
                "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (
                        f"{vote.created_at:%Y-%m-%d %H:%M}",
                        reverse("admin:battles_battle_change", args=[vote.battle_id]),
                        vote.battle.question_id[:12],
                        vote.model_a.name,
                        vote.model_b.name,
                        vote.winner,
                        "yes" if vote.anony else "no",
                        vote.excluded_reason or "—",
                    )
                    for vote in shown
                ),
            ),
        )

    # -- decisions -------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view(self.decide_view)
        return [
            path("<int:object_id>/decide/<str:decision>/", view, name="battles_flaggedvoter_decide"),
            *super().get_urls(),
        ]

    def decide_view(self, request, object_id, decision):
        """The change page's buttons: one voter, one decision, a reason."""
        voter = get_object_or_404(FlaggedVoter, pk=object_id)
        change_url = reverse("admin:battles_flaggedvoter_change", args=[voter.pk])
        if decision not in anomaly_review.DECISION_STATES:
            self.message_user(request, f"Unknown decision {decision!r}.", messages.ERROR)
            return HttpResponseRedirect(change_url)
        response = self._confirm_or_apply(request, FlaggedVoter.objects.filter(pk=voter.pk), decision, change_url)
        return response or HttpResponseRedirect(change_url)

    @admin.action(description="Confirm: keep the selected voters' votes excluded")
    def confirm(self, request, queryset):
        return self._confirm_or_apply(request, queryset, VoterDecision.Decision.CONFIRM)

    @admin.action(description="Clear: restore the selected voters' votes")
    def clear(self, request, queryset):
        return self._confirm_or_apply(request, queryset, VoterDecision.Decision.CLEAR)

    @admin.action(description="Ban: exclude the selected voters' votes, now and later")
    def ban(self, request, queryset):
        return self._confirm_or_apply(request, queryset, VoterDecision.Decision.BAN)

    def _confirm_or_apply(self, request, queryset, decision: str, cancel_url: str = ""):
        """Ask for the reason first; with it, decide each voter through the service."""
        if not self.has_review_permission(request):
            raise PermissionDenied
        form = DecisionForm(request.POST if "confirm" in request.POST else None)
        if form.is_bound and form.is_valid():
            for voter in queryset:
                try:
                    logged = anomaly_review.flagged_voter_decide(
                        voter_id=voter.pk, decision=decision, actor=request.user, reason=form.cleaned_data["reason"]
                    )
                except anomaly_review.DecisionError as exc:
                    self.message_user(request, f"{voter}: {exc}", messages.WARNING)
                    continue
                self.message_user(
                    request,
                    f"{voter.judge[:16]}…: now {logged.get_to_state_display().lower()}; "
                    f"{logged.votes_changed} vote(s) changed. The next recomputation reflects it.",
                    messages.SUCCESS,
                )
            return None
        label = VoterDecision.Decision(decision).label
        context = {
            **self.admin_site.each_context(request),
            "title": f"{label} flagged voters: give the reason",
            "opts": self.model._meta,
            "decision": decision,
            "label": label,
            "voters": queryset,
            "form": form,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "from_changelist": not cancel_url,
            "cancel_url": cancel_url or reverse("admin:battles_flaggedvoter_changelist"),
        }
        return TemplateResponse(request, "admin/battles/flaggedvoter/decide.html", context)


def _elo(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"
