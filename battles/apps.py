from django.apps import AppConfig


class BattlesConfig(AppConfig):
    name = "battles"

    def ready(self):
        from django.db.models import signals

        from . import identity_terms

        # A model admitted to the pool has its names proposed as identity terms, for staff to decide.
        signals.post_save.connect(
            identity_terms.on_lifecycle_event_saved,
            sender="providers.LifecycleEvent",
            dispatch_uid="battles-identity-proposals",
        )
