"""Battles, votes and served shares in admin: for reading and auditing, not for editing.

A battle is what voters said and models answered, and a vote is what a voter chose, so
neither is changed by hand here. (Reviewing flagged voters and their votes has its own
flow.) The tables hold millions of rows: counts are not run on every page
(`show_full_result_count`), related names are joined, and the lists filter on indexed
columns.
"""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from .models import Battle, SamplingShare, Vote


class ReadOnlyAdmin(admin.ModelAdmin):
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


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
