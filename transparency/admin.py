from django.contrib import admin

from arenasite.admin_mixins import ReadOnlyAdminMixin

from .models import ExpectedShareSnapshot, PolicyChange


@admin.register(PolicyChange)
class PolicyChangeAdmin(admin.ModelAdmin):
    """Staff record policy changes here; they are public on /transparency/ and cannot be edited."""

    list_display = ["effective_at", "title", "setting", "old_value", "new_value", "recorded_by"]
    search_fields = ["title", "setting", "description"]
    date_hierarchy = "effective_at"
    readonly_fields = ["recorded_by", "recorded_at"]

    def save_model(self, request, obj, form, change):
        obj.recorded_by = request.user
        super().save_model(request, obj, form, change)

    def has_change_permission(self, request, obj=None):
        # The change form still opens (read-only) for an existing entry: viewing stays allowed.
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ExpectedShareSnapshot)
class ExpectedShareSnapshotAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["taken_at", "day"]
    date_hierarchy = "taken_at"
