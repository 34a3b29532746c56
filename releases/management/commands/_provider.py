"""Finding a provider named on the command line."""

from django.core.management.base import CommandError
from django.db.models import Q

from providers.models import Provider


def provider_named(text: str) -> Provider:
    """The provider whose slug (or, failing that, name) is `text`, case-insensitively."""
    provider = Provider.objects.filter(slug__iexact=text).first()
    if provider is None:
        provider = Provider.objects.filter(Q(name__iexact=text)).first()
    if provider is None:
        raise CommandError(f"There is no provider {text!r} (give its slug or name).")
    return provider
