"""The portal's forms: they check the shape of the input; the rules are applied by the
services they feed (portal/services.py, providers.lifecycle, releases.sharing)."""

from __future__ import annotations

from typing import Any

from django import forms

from providers.lifecycle import REASON_MAX_LENGTH
from providers.models import TEMPERATURE_MAX, TEMPERATURE_MIN, ArenaModel, LifecycleStatus


class ProviderForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Your organisation, as the public registry will show it.")
    website = forms.URLField(required=False, assume_scheme="https")


class ArenaModelForm(forms.Form):
    """Register a model, or edit one. On edit, the public name is fixed once the model has
    left draft, and an empty API key keeps the stored one."""

    name = forms.CharField(
        label="Public name",
        max_length=100,
        help_text="Shown once the model is on the leaderboard; until then a codename stands in for it.",
    )
    access_kind = forms.ChoiceField(
        choices=ArenaModel.AccessKind.choices,
        help_text="Only models that third parties can reach (open weights, a public API or a public service) "
        "are admitted.",
    )
    licence = forms.CharField(max_length=100, required=False)
    description = forms.CharField(max_length=5000, required=False, widget=forms.Textarea(attrs={"rows": 3}))
    knowledge_cutoff = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    endpoint_base_url = forms.URLField(
        label="Endpoint base URL",
        required=False,
        assume_scheme="https",
        help_text="OpenAI-compatible chat completions, e.g. https://api.example.com/v1",
    )
    endpoint_model_id = forms.CharField(label="Endpoint model id", max_length=200, required=False)
    endpoint_api_key = forms.CharField(
        label="Endpoint API key",
        max_length=1000,
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted; never shown again.",
    )
    clear_endpoint_api_key = forms.BooleanField(label="Remove the stored API key", required=False)
    temperature = forms.FloatField(
        label="Sampling temperature",
        required=False,
        min_value=TEMPERATURE_MIN,
        max_value=TEMPERATURE_MAX,
        help_text=ArenaModel._meta.get_field("temperature").help_text,
    )
    heads_up_requested = forms.BooleanField(
        label="Ask for one day's notice before listing",
        required=False,
        help_text="Staff's decision to list the model then takes effect a day later.",
    )

    def __init__(self, *args, instance: ArenaModel | None = None, **kwargs):
        self.instance = instance
        if instance is not None and "initial" not in kwargs:
            kwargs["initial"] = {name: getattr(instance, name) for name in self.base_fields if hasattr(instance, name)}
            kwargs["initial"]["endpoint_api_key"] = ""  # the stored key never goes back to the browser
        super().__init__(*args, **kwargs)
        if instance is None:
            del self.fields["clear_endpoint_api_key"]
        else:
            kept = "Leave empty to keep the stored key." if instance.endpoint_api_key else "No key is stored."
            self.fields["endpoint_api_key"].help_text = f"Stored encrypted; never shown again. {kept}"
            if instance.status != LifecycleStatus.DRAFT:
                self.fields["name"].disabled = True
                self.fields["name"].help_text = "The public name can only change while the model is a draft."
            if instance.status in ArenaModel.POOL_STATUSES:
                for name in ("access_kind", "endpoint_base_url", "endpoint_model_id"):
                    self.fields[name].help_text = (
                        "The model is in the arena: a change here waits for staff approval, and the model is "
                        "served as approved until then. A key entered with such a change goes with it."
                    )

    def model_values(self) -> dict[str, Any]:
        """The cleaned input as providers.registration takes it: only what the form may change."""
        data = dict(self.cleaned_data)
        clear = data.pop("clear_endpoint_api_key", False)
        if self.fields["name"].disabled:
            data.pop("name")
        if clear:
            data["endpoint_api_key"] = ""
        elif not data["endpoint_api_key"] and self.instance is not None:
            data.pop("endpoint_api_key")  # keep the stored key
        return data


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Kept in the model's lifecycle log.",
    )


class HeadsUpForm(forms.Form):
    heads_up_requested = forms.BooleanField(required=False)


class AcceptTermsForm(forms.Form):
    version = forms.CharField(widget=forms.HiddenInput)
    accept = forms.BooleanField(label="I accept these terms on behalf of the provider")

    def __init__(self, *args, current_version: str, **kwargs):
        kwargs["initial"] = {"version": current_version}
        super().__init__(*args, **kwargs)
        self.current_version = current_version

    def clean_version(self):
        # Accepting binds the provider to the terms in force now: if they changed while the
        # page was open, the person accepted a text that is no longer the one recorded.
        version = self.cleaned_data["version"]
        if version != self.current_version:
            raise forms.ValidationError(
                f"The terms changed to version {self.current_version} while you read them; read them again."
            )
        return version


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. the CI job that uses it.")
