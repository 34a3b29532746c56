from __future__ import annotations

import json

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from arenasite import clock
from arenasite.admin_mixins import ConfirmThenDecideMixin, DecisionForm, ReadOnlyAdminMixin, decision_action

from . import building, files, review, sharing, tasks
from .dates import parse_cutoff
from .models import DataRelease, DataSharingAgreement, Download, ProviderShare, ReleasedBattle


class BuildForm(forms.Form):
    cutoff = forms.CharField(
        max_length=40,
        help_text="YYYY-MM-DD (the whole day, UTC) or an ISO date-time; today or earlier. The release takes the "
        "voted release-pool battles up to this moment that no earlier release took.",
    )

    def clean_cutoff(self):
        try:
            return parse_cutoff(self.cleaned_data["cutoff"].strip())
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc


class PublishForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2, "cols": 80}),
        required=False,
        help_text="A note for the admin history (optional); the release's data card is what the public reads.",
    )


@admin.register(DataRelease)
class DataReleaseAdmin(admin.ModelAdmin):
    """Build a release (a Celery task), review it (counts, what was left out and why, a sample of
    rows, the data card, the files), then publish it through a confirmation page, or discard it."""

    list_display = ["id", "cutoff", "state", "battle_count", "excluded_count", "built_at", "published_at"]
    list_filter = ["state"]
    actions = ["publish", "discard"]
    fields = [
        "cutoff",
        "state",
        "progress",
        "battle_count",
        "excluded_count",
        "exclusions",
        "file_links",
        "sample_rows",
        "card",
        "created_at",
        "built_at",
        "published_at",
        "published_by",
        "error",
        "manifest_json",
    ]
    readonly_fields = [f for f in fields]
    change_form_template = "admin/releases/datarelease/change_form.html"
    change_list_template = "admin/releases/datarelease/change_list.html"

    def has_add_permission(self, request):
        # Releases are built (the Build button, `build_release` or its Celery task), never typed in.
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_publish_permission(self, request):
        return request.user.has_perm("releases.publish_datarelease")

    def has_build_permission(self, request):
        # Building a release adds one: the model's own add permission.
        return request.user.has_perm("releases.add_datarelease")

    @admin.display(description="Progress")
    def progress(self, release: DataRelease) -> str:
        if release.state == DataRelease.State.BUILDING:
            return review.progress(release).describe() + " This page refreshes itself."
        if release.state == DataRelease.State.BUILT:
            return "Built: review it below, then publish or discard it."
        return release.get_state_display()

    @admin.display(description="Left out")
    def exclusions(self, release: DataRelease) -> str:
        found = review.left_out(release.manifest)
        if not found:
            return "none"
        return format_html_join(
            "",
            "<div>{}: {}</div>",
            ((f"{group} ({reason})" if reason else group, count) for group, reason, count in found),
        )

    @admin.display(description="Files")
    def file_links(self, release: DataRelease) -> str:
        if release.state not in (DataRelease.State.BUILT, DataRelease.State.PUBLISHED):
            return "—"
        return format_html_join(
            " · ",
            '<a href="{}">{}</a>',
            ((reverse("releases:file", args=[release.pk, name]), name) for name in files.FILE_NAMES),
        )

    @admin.display(description=f"First {review.SAMPLE_ROWS} rows")
    def sample_rows(self, release: DataRelease) -> str:
        rows = review.sample(release)
        if not rows:
            return "—"
        columns = ("question_id", "model_a", "model_b", "winner", "turn", "anony", "language", "prompt")
        head = format_html_join("", "<th>{}</th>", ((name,) for name in columns))
        body = format_html_join(
            "",
            "<tr>{}</tr>",
            ((format_html_join("", "<td>{}</td>", ((row[name],) for name in columns)),) for row in rows),
        )
        return format_html(
            '<table class="release-sample"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', head, body
        )

    @admin.display(description="Data card")
    def card(self, release: DataRelease) -> str:
        text = review.data_card(release)
        return format_html('<pre class="release-card">{}</pre>', text) if text else "—"

    @admin.display(description="Manifest")
    def manifest_json(self, release: DataRelease) -> str:
        return format_html("<pre>{}</pre>", json.dumps(release.manifest, indent=2, ensure_ascii=False))

    # -- build, publish ------------------------------------------------------------------------------

    def get_urls(self):
        return [
            path("build/", self.admin_site.admin_view(self.build_view), name="releases_datarelease_build"),
            path(
                "<int:object_id>/publish/",
                self.admin_site.admin_view(self.publish_view),
                name="releases_datarelease_publish",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "may_build": self.has_build_permission(request)}
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        release = self.get_object(request, object_id)
        extra_context = {
            **(extra_context or {}),
            "building": release is not None and release.state == DataRelease.State.BUILDING,
            "may_publish": release is not None
            and release.state == DataRelease.State.BUILT
            and self.has_publish_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def build_view(self, request):
        """A form for the cutoff; on POST the release row is made (the lock against a second build)
        and its build queued, and staff are sent to the release's page, which shows its progress."""
        if not self.has_build_permission(request):
            raise PermissionDenied
        form = BuildForm(request.POST or None, initial={"cutoff": f"{clock.now():%Y-%m-%d}"})
        if request.method == "POST" and form.is_valid():
            try:
                release = building.start_release(form.cleaned_data["cutoff"])
            except building.ReleaseRefused as exc:
                form.add_error("cutoff", str(exc))
            else:
                self.log_addition(request, release, f"build queued, cutoff {release.cutoff:%Y-%m-%d %H:%M}")
                self._queue_build(request, release)
                return HttpResponseRedirect(reverse("admin:releases_datarelease_change", args=[release.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": "Build a community release",
            "opts": self.model._meta,
            "form": form,
            "running": DataRelease.objects.filter(state=DataRelease.State.BUILDING).first(),
            "pool_percent": round(settings.RELEASE_POOL_FRACTION * 100),
        }
        return TemplateResponse(request, "admin/releases/datarelease/build.html", context)

    def _queue_build(self, request, release: DataRelease) -> None:
        try:
            tasks.build_release.delay(release_id=release.pk)
        except building.ReleaseRefused as exc:
            self.message_user(request, f"Release {release.pk}: {exc}", messages.ERROR)
        except Exception as exc:  # the broker is down, or (tasks run eagerly) the build failed
            release.refresh_from_db()
            if release.state == DataRelease.State.BUILDING:
                DataRelease.objects.filter(pk=release.pk, state=DataRelease.State.BUILDING).update(
                    state=DataRelease.State.FAILED, error=f"The build could not be queued: {type(exc).__name__}: {exc}"
                )
            self.message_user(request, f"Release {release.pk} failed: {type(exc).__name__}: {exc}", messages.ERROR)
        else:
            release.refresh_from_db()
            if release.state == DataRelease.State.BUILDING:
                self.message_user(request, f"Release {release.pk} is being built; this page shows how far it is.")
            else:
                self.message_user(request, f"Release {release.pk}: {release.get_state_display().lower()}.")

    def publish_view(self, request, object_id):
        """The change page's Publish button: the confirmation page for one release."""
        if not self.has_publish_permission(request):
            raise PermissionDenied
        release = get_object_or_404(DataRelease, pk=object_id)
        change_url = reverse("admin:releases_datarelease_change", args=[release.pk])
        response = self.confirm_or_publish(request, DataRelease.objects.filter(pk=release.pk), cancel_url=change_url)
        return response or HttpResponseRedirect(change_url)

    def confirm_or_publish(self, request, queryset, *, cancel_url: str):
        form = PublishForm(request.POST if "confirm" in request.POST else None)
        if form.is_bound and form.is_valid():
            for release in queryset:
                self._publish(request, release, form.cleaned_data["reason"])
            return None
        releases = list(queryset.order_by("cutoff"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Publish: confirm",
            "opts": self.model._meta,
            "form": form,
            "publications": [review.publication(release) for release in releases],
            "from_changelist": request.resolver_match.url_name == "releases_datarelease_changelist",
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "data_url": reverse("releases:data"),
            "cancel_url": cancel_url,
        }
        return TemplateResponse(request, "admin/releases/datarelease/publish_confirm.html", context)

    def _publish(self, request, release: DataRelease, reason: str) -> None:
        if release.state == DataRelease.State.PUBLISHED:
            self.message_user(request, f"Release {release.pk} was already published.", messages.INFO)
            return
        try:
            published = building.publish(release, by=request.user)
        except building.ReleaseRefused as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.log_change(request, published, f"published: {reason}" if reason else "published")
        self.message_user(
            request,
            f"Release {published.pk} is published: {published.battle_count} battles at {reverse('releases:data')}.",
            messages.SUCCESS,
        )

    @admin.action(description="Publish the selected releases…", permissions=["publish"])
    def publish(self, request, queryset):
        return self.confirm_or_publish(request, queryset, cancel_url=request.get_full_path())

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


class AgreementDecisionForm(DecisionForm):
    reason_help = "Kept on the agreement and shown to the provider."


@admin.register(DataSharingAgreement)
class DataSharingAgreementAdmin(ConfirmThenDecideMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
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
    actions = [
        decision_action("Approve", "Approve the selected agreements…", approve=True),
        decision_action("Revoke", "Revoke the selected agreements…", approve=False),
    ]
    decision_form = AgreementDecisionForm
    decision_template = "admin/releases/agreement_decide.html"
    decision_title = "{verb} data-sharing agreements"
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

    def decision_context(self, request, queryset) -> dict:
        return {
            "agreements": queryset.select_related("provider", "accepted_by"),
            "current_terms": sharing.terms_version(),
        }

    def decide(self, request, agreement: DataSharingAgreement, *, approve: bool, reason: str) -> None:
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
