"""The Django admin of providers, their models and the models' lifecycle, one module per page.

Django's admin autodiscovery imports this package; importing each module registers its admin.
"""

from providers.admin import api_tokens, arena_models, change_requests, lifecycle_log, providers

__all__ = ["api_tokens", "arena_models", "change_requests", "lifecycle_log", "providers"]
