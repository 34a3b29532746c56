"""Re-encrypt every encrypted field under the first key of ENDPOINT_KEY_ENCRYPTION_KEYS.

Rotation, step by step (docs/security.md):
1. put a new key first in ENDPOINT_KEY_ENCRYPTION_KEYS, keep the old ones after it, restart:
   new values are encrypted with the new key, old ones still decrypt;
2. run this command: every stored value is re-encrypted with the new key;
3. run it again with --check (exit status 1 while any value needs an old key), then drop
   the old keys from the setting.
Idempotent: a value already under the first key is left alone, so it can be re-run after
an interruption. Each row is updated only if it still holds the value that was read.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken
from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db.models import TextField
from django.db.models.functions import Cast

from arenasite.fields import EncryptedTextField, decrypt


class Command(BaseCommand):
    help = "Re-encrypt stored secrets (endpoint API keys) under the first ENDPOINT_KEY_ENCRYPTION_KEYS key."

    def add_arguments(self, parser):
        parser.add_argument(
            "--check", action="store_true", help="Change nothing; exit 1 if any value needs an old key."
        )

    def handle(self, *args, check: bool = False, **options):
        primary = Fernet(settings.ENDPOINT_KEY_ENCRYPTION_KEYS[0].encode())
        stale_total = 0
        for model in apps.get_models():
            if model._meta.proxy:
                continue  # its rows are its concrete model's, rotated there
            for field in model._meta.concrete_fields:
                if isinstance(field, EncryptedTextField):
                    stale, rotated = self._rotate(model, field.name, primary, check=check)
                    stale_total += stale
                    self.stdout.write(f"{model._meta.label}.{field.name}: {stale} under an old key, {rotated} rotated")
        if check and stale_total:
            raise CommandError(f"{stale_total} value(s) are still encrypted under an old key; run without --check.")

    def _rotate(self, model, name: str, primary: Fernet, *, check: bool) -> tuple[int, int]:
        # Cast reads the stored token itself; the field would hand back the decrypted text.
        rows = model._base_manager.annotate(_stored=Cast(name, TextField())).exclude(_stored="")
        stale = rotated = 0
        for pk, stored in rows.values_list("pk", "_stored").iterator(chunk_size=500):
            try:
                primary.decrypt(stored.encode())
                continue  # already under the first key
            except InvalidToken:
                stale += 1
            if check:
                continue
            plaintext = decrypt(stored)  # ImproperlyConfigured if no configured key opens it
            # Conditional: a value changed since it was read is left to its writer (who used the new key).
            rotated += (
                model._base_manager.annotate(_stored=Cast(name, TextField()))
                .filter(pk=pk, _stored=stored)
                .update(**{name: plaintext})
            )
        return stale, rotated
