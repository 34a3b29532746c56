"""The form of a model's admin page: its endpoint key kept out of the browser, the naming rules
providers meet, and help texts that give the settings in force."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.db import models

from providers import names
from providers.models import ArenaModel

# Addresses typed without a scheme are taken as https (Django 6's default; silences its warning).
URL_FIELDS: dict[type[models.Field[Any, Any]], dict[str, Any]] = {models.URLField: {"assume_scheme": "https"}}


def _https_formfield(field: models.Field[Any, Any], **kwargs: Any) -> forms.Field | None:
    """Form fields for a ModelForm class built outside an admin (whose overrides then do not apply)."""
    return field.formfield(**{**URL_FIELDS.get(type(field), {}), **kwargs})


class ArenaModelForm(forms.ModelForm):
    endpoint_api_key = forms.CharField(
        label="Endpoint API key",
        required=False,
        max_length=1000,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted and never shown again. Leave empty to keep the current key.",
    )
    clear_endpoint_api_key = forms.BooleanField(label="Remove the stored API key", required=False)

    class Meta:
        model = ArenaModel
        fields = [
            "provider",
            "name",
            "family",
            "access_kind",
            "licence",
            "description",
            "knowledge_cutoff",
            "heads_up_requested",
            "is_demo",
            "endpoint_base_url",
            "endpoint_model_id",
            "endpoint_api_key",
            "temperature",
            "sampling_weight",
            "battle_targets",
        ]
        formfield_callback = _https_formfield

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The stored key never goes back to the browser, not even as the field's initial value;
        # this also keeps the change history from claiming the key changed on every save.
        self.initial["endpoint_api_key"] = ""
        # The model's help texts name settings; staff need the values in force.
        for name, text in _help_texts_in_force().items():
            if name in self.fields:
                self.fields[name].help_text = text

    def clean_endpoint_api_key(self) -> str:
        value: str = self.cleaned_data["endpoint_api_key"]
        if not value and self.instance.pk:
            stored: str = self.instance.endpoint_api_key  # keep what is stored
            return stored
        return value

    def clean_name(self) -> str:
        # The rules providers meet (providers/names.py): reserved names, one name per provider,
        # one name among public models.
        name: str = self.cleaned_data["name"]
        if self.instance.pk and name == self.instance.name:
            return name
        provider = self.cleaned_data.get("provider") or (self.instance.provider if self.instance.pk else None)
        refusal = names.name_refusal(name, provider=provider, exclude_pk=self.instance.pk)
        if refusal:
            raise forms.ValidationError(refusal)
        return name

    def clean_battle_targets(self) -> Any:
        targets = self.cleaned_data["battle_targets"]
        if self.instance.pk and any(target.pk == self.instance.pk for target in targets):
            raise forms.ValidationError("A model cannot be its own battle target.")
        return targets

    def clean(self) -> dict[str, Any]:
        super().clean()
        if self.cleaned_data.get("clear_endpoint_api_key"):
            self.cleaned_data["endpoint_api_key"] = ""
        return self.cleaned_data


def _help_texts_in_force() -> dict[str, str]:
    days = settings.ARENA_HEADS_UP_DAYS
    return {
        "family": "Variants of one model line share a family (set by staff, e.g. at admission). When the provider "
        "lists one of them, the kept ratings of the others become public "
        f"{settings.ARENA_RETRACTION_DELAY_DAYS} days later (ARENA_RETRACTION_DELAY_DAYS). Empty: the model is a "
        "family of its own.",
        "heads_up_requested": f"The provider asked for notice: listing waits {days} day{'s' if days != 1 else ''} "
        "after the decision (ARENA_HEADS_UP_DAYS).",
        "sampling_weight": "Weight in the draw of anonymous battles, above 0 (default 1; a higher weight means more "
        "battles, though not proportionally more). A model in initial rating is drawn "
        f"{settings.ARENA_NEW_MODEL_BOOST:g} times as often as this weight says until it has "
        f"{settings.ARENA_NEW_MODEL_BOOST_VOTES} counted votes "
        "(ARENA_NEW_MODEL_BOOST, ARENA_NEW_MODEL_BOOST_VOTES).",
        "battle_targets": "Preferred opponents: when this model is drawn first, its opponent comes from these (those "
        f"in the battle pool) {settings.ARENA_BATTLE_TARGET_SHARE:.0%} of the time (ARENA_BATTLE_TARGET_SHARE).",
    }
