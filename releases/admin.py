from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from arenasite.admin_mixins import ReadOnlyAdminMixin

from . import building, files, sharing
from .models import DataRelease, DataSharingAgreement, Download, ProviderShare, ReleasedBattle


@admin.register(DataRelease)
class DataReleaseAdmin(admin.ModelAdmin):
    """Review a built release (counts, exclusions, files), then publish or discard it."""

    list_display = ["id", "cutoff", "state", "battle_count", "excluded_count", "built_at", "published_at"]
    list_filter = ["state"]
    actions = ["publish", "discard"]
    fields = [
        "cutoff",
        "state",
        "battle_count",
        "excluded_count",
        "exclusions",
        "file_links",
        "created_at",
        "built_at",
        "published_at",
        "published_by",
        "error",
        "manifest_json",
    ]
    readonly_fields = [f for f in fields]

    def has_add_permission(self, request):
        # Releases are built by `build_release` or its Celery task, never typed in.
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_publish_permission(self, request):
        return request.user.has_perm("releases.publish_datarelease")

    @admin.display(description="Left out for personal data")
    def exclusions(self, release: DataRelease) -> str:
        found = (release.manifest.get("excluded") or {}).get("personal_data") or {}
        return ", ".join(f"{reason}: {count}" for reason, count in found.items()) or "none"

    @admin.display(description="Files")
    def file_links(self, release: DataRelease) -> str:
        if release.state not in (DataRelease.State.BUILT, DataRelease.State.PUBLISHED):
            return "—"
        return format_html_join(
            " · ",
            '<a href="{}">{}</a>',
            ((reverse("releases:file", args=[release.pk, name]), name) for name in files.FILE_NAMES),
        )

    @admin.display(description="Manifest")
    def manifest_json(self, release: DataRelease) -> str:
        return format_html("<pre>{}</pre>", json.dumps(release.manifest, indent=2, ensure_ascii=False))

    @admin.action(description="Publish the selected releases", permissions=["publish"])
    def publish(self, request, queryset):
        for release in queryset:
            try:
                building.publish(release, by=request.user)
            except building.ReleaseRefused as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"Release {release.pk} is published.", messages.SUCCESS)

    @admin.action(
        description="Discard the selected releases (their battles wait for the next one)", permissions=["publish"]
    )
    def discard(self, request, queryset):
        for release in queryset:
            try:
                building.discard(release)
            except building.ReleaseRefused as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"Release {release.pk} is discarded.", messages.SUCCESS)


@admin.register(ReleasedBattle)
class ReleasedBattleAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["battle", "release", "excluded_reason"]
    list_filter = ["excluded_reason"]
    list_select_related = ["battle", "release"]
    search_fields = ["=battle__question_id"]
    show_full_result_count = False


# --- provider early access -----------------------------------------------------------------------


class DecisionForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        required=False,
        help_text="Kept on the agreement and shown to the provider.",
    )

    def __init__(self, *args, required: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reason"].required = required


def _decision_action(approve: bool):
    """An admin action that asks for a reason on a confirmation page, then decides."""

    def run(modeladmin, request, queryset):
        return modeladmin.confirm_or_decide(request, queryset, approve=approve)

    run.__name__ = "approve" if approve else "revoke"
    description = "Approve the selected agreements…" if approve else "Revoke the selected agreements…"
    return admin.action(description=description, permissions=["decide"])(run)


@admin.register(DataSharingAgreement)
class DataSharingAgreementAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Providers accept the terms (API or `manage.py agreement`); staff approve or revoke here."""

    list_display = [
        "id",
        "provider",
        "terms_version",
        "state",
        "accepted_by",
        "accepted_at",
        "decided_by",
        "decided_at",
    ]
    list_filter = ["state", "terms_version"]
    list_select_related = ["provider", "accepted_by", "decided_by"]
    search_fields = ["provider__name", "provider__slug"]
    actions = [_decision_action(True), _decision_action(False)]
    fields = [
        "provider",
        "terms_version",
        "state",
        "accepted_by",
        "accepted_at",
        "decided_by",
        "decided_at",
        "reason",
        "share_count",
    ]
    readonly_fields = fields

    def has_decide_permission(self, request):
        return request.user.has_perm("releases.decide_datasharingagreement")

    @admin.display(description="Shares")
    def share_count(self, agreement: DataSharingAgreement) -> int:
        return agreement.shares.count()

    def confirm_or_decide(self, request, queryset, *, approve: bool):
        verb = "Approve" if approve else "Revoke"
        form = DecisionForm(request.POST if "confirm" in request.POST else None, required=not approve)
        if form.is_bound and form.is_valid():
            for agreement in queryset:
                self._decide(request, agreement, approve=approve, reason=form.cleaned_data["reason"])
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": f"{verb} data-sharing agreements",
            "opts": self.model._meta,
            "verb": verb,
            "action_name": "approve" if approve else "revoke",
            "agreements": queryset.select_related("provider", "accepted_by"),
            "form": form,
            "current_terms": sharing.terms_version(),
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/releases/agreement_decide.html", context)

    def _decide(self, request, agreement: DataSharingAgreement, *, approve: bool, reason: str) -> None:
        try:
            decided, changed = sharing.agreement_decide(
                agreement_id=agreement.pk, approve=approve, by=request.user, reason=reason
            )
        except sharing.SharingRefused as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        if not changed:
            self.message_user(request, f"Agreement {decided.pk} was already {decided.state}.", messages.INFO)
            return
        # Django's admin history keeps every decision, also once a later one overwrote the row's.
        self.log_change(request, decided, f"{decided.state}: {reason}" if reason else decided.state)
        self.message_user(request, f"Agreement {decided.pk} ({decided.provider}) is {decided.state}.", messages.SUCCESS)


@admin.register(ProviderShare)
class ProviderShareAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Shares as built, with links to their files (staff downloads are logged, not as the provider's)."""

    list_display = ["id", "provider", "state", "requested_by", "requested_at", "built_at", "battle_count"]
    list_filter = ["state"]
    list_select_related = ["provider", "requested_by"]
    search_fields = ["provider__name", "provider__slug"]
    fields = [
        "provider",
        "agreement",
        "state",
        "requested_by",
        "requested_at",
        "built_at",
        "battle_count",
        "excluded_count",
        "exclusions",
        "file_links",
        "error",
        "manifest_json",
    ]
    readonly_fields = fields

    @admin.display(description="Left out for personal data")
    def exclusions(self, share: ProviderShare) -> str:
        found = (share.manifest.get("excluded") or {}).get("personal_data") or {}
        return ", ".join(f"{reason}: {count}" for reason, count in found.items()) or "none"

    @admin.display(description="Files")
    def file_links(self, share: ProviderShare) -> str:
        if share.state != ProviderShare.State.READY:
            return "—"
        url = reverse("share-download", args=[share.pk])
        return format_html_join(
            " · ", '<a href="{}?format={}">{}</a>', ((url, fmt, name) for fmt, name in files.FORMAT_FILES.items())
        )

    @admin.display(description="Manifest")
    def manifest_json(self, share: ProviderShare) -> str:
        return format_html("<pre>{}</pre>", json.dumps(share.manifest, indent=2, ensure_ascii=False))


@admin.register(Download)
class DownloadAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The download log: every share file served through the API and release file from /data/."""

    list_display = ["at", "user", "provider", "share", "release", "format", "bytes"]
    list_filter = ["format", ("provider", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["user", "provider", "share", "release"]
    search_fields = ["user__username", "provider__name"]
    date_hierarchy = "at"
    show_full_result_count = False
