from django.contrib import admin

from .admin_mixins import ReadOnlyAdminMixin
from .models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only for staff with the view permission; nobody, superusers included, adds, edits or deletes."""

    list_display = ["at", "action", "actor_label", "summary", "ip"]
    list_filter = ["action"]
    search_fields = ["actor_label", "summary", "subject_id", "ip"]
    date_hierarchy = "at"
    list_select_related = ["actor"]
    show_full_result_count = False  # the log only grows; counting it on every page is wasted work
    fields = ["at", "action", "actor", "actor_label", "summary", "subject_type", "subject_id", "ip", "details"]
    readonly_fields = fields
