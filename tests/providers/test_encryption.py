import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from arenasite.fields import _fernet
from providers.models import ArenaModel

from ..factories import ArenaModelFactory

pytestmark = pytest.mark.django_db
SECRET = "sk-live-0123456789abcdef"


def stored_value(model) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT endpoint_api_key FROM providers_arenamodel WHERE id = %s", [model.pk])
        return cursor.fetchone()[0]


def test_the_api_key_is_encrypted_at_rest_and_readable_in_python():
    model = ArenaModelFactory(endpoint_api_key=SECRET)
    raw = stored_value(model)
    assert SECRET not in raw
    assert raw.startswith("gAAAA")  # a Fernet token
    assert ArenaModel.objects.get(pk=model.pk).endpoint_api_key == SECRET


def test_an_empty_key_stays_empty():
    model = ArenaModelFactory(endpoint_api_key="")
    assert stored_value(model) == ""
    assert ArenaModel.objects.get(pk=model.pk).endpoint_api_key == ""


def test_keys_rotate_old_values_stay_readable(settings):
    old_key = settings.ENDPOINT_KEY_ENCRYPTION_KEYS[0]
    model = ArenaModelFactory(endpoint_api_key=SECRET)
    settings.ENDPOINT_KEY_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), old_key]
    _fernet.cache_clear()
    assert ArenaModel.objects.get(pk=model.pk).endpoint_api_key == SECRET


def test_a_missing_key_is_a_clear_configuration_error(settings):
    model = ArenaModelFactory(endpoint_api_key=SECRET)
    settings.ENDPOINT_KEY_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(ImproperlyConfigured, match="rotated"):
        ArenaModel.objects.get(pk=model.pk)
