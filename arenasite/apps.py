from pathlib import Path

from django.apps import AppConfig
from django.conf import settings


class ArenasiteConfig(AppConfig):
    name = "arenasite"
    verbose_name = "Arenasite"

    def ready(self):
        from allauth.mfa import signals as mfa_signals
        from django.contrib.auth import get_user_model
        from django.contrib.auth import signals as auth_signals
        from django.db.models import signals

        from . import audit, mfa  # mfa also registers its deployment check
        from .cache import create_cache_table

        user_model = get_user_model()
        # A user whose staff powers are withheld on a request is saved with its real flags; connected
        # before the audit receivers, so they see the real flags too, and withheld again after them.
        signals.pre_save.connect(mfa.keep_real_flags_on_save, sender=user_model, dispatch_uid="mfa-real-flags")

        # dispatch_uid: ready() may run more than once in tests; one row per event.
        auth_signals.user_logged_in.connect(audit.on_login, dispatch_uid="audit-login")
        auth_signals.user_logged_out.connect(audit.on_logout, dispatch_uid="audit-logout")
        auth_signals.user_login_failed.connect(audit.on_login_failed, dispatch_uid="audit-login-failed")
        mfa_signals.authenticator_added.connect(audit.on_authenticator_added, dispatch_uid="audit-mfa-added")
        mfa_signals.authenticator_removed.connect(audit.on_authenticator_removed, dispatch_uid="audit-mfa-removed")

        for sender in (user_model, "providers.ApiToken", "providers.Membership"):
            signals.pre_save.connect(audit.remember_previous, sender=sender, dispatch_uid=f"audit-previous-{sender}")
        signals.post_save.connect(audit.on_user_saved, sender=user_model, dispatch_uid="audit-user")
        signals.post_save.connect(mfa.withhold_again_after_save, sender=user_model, dispatch_uid="mfa-withhold-again")
        signals.post_save.connect(audit.on_token_saved, sender="providers.ApiToken", dispatch_uid="audit-token")
        signals.post_save.connect(
            audit.on_membership_saved, sender="providers.Membership", dispatch_uid="audit-membership"
        )
        signals.post_delete.connect(
            audit.on_membership_deleted, sender="providers.Membership", dispatch_uid="audit-membership-deleted"
        )
        for through in (user_model.groups.through, user_model.user_permissions.through):
            signals.m2m_changed.connect(audit.on_user_m2m_changed, sender=through, dispatch_uid=f"audit-m2m-{through}")
        signals.post_save.connect(audit.on_download_saved, sender="releases.Download", dispatch_uid="audit-download")
        signals.post_save.connect(
            audit.on_lifecycle_event_saved, sender="providers.LifecycleEvent", dispatch_uid="audit-lifecycle"
        )
        # The table of the cache without CACHE_URL, made if missing (arenasite/cache.py).
        signals.post_migrate.connect(create_cache_table, sender=self, dispatch_uid="cache-table")
        make_var_folders()


def make_var_folders() -> None:
    """The folders every process of the site writes to, made as Django starts in any of them
    (web, worker, beat, a command) rather than when the settings are read: collected static
    files, and the embedded broker's queues when no broker server is configured."""
    folders = [Path(settings.STATIC_ROOT)]
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
    folders += [Path(options[key]) for key in ("data_folder_in", "data_folder_out", "control_folder") if key in options]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
