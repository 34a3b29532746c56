from __future__ import annotations

from urllib.parse import urlsplit

from django.db import IntegrityError, transaction
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .. import changes, names
from ..endpoints import endpoint_refusal
from ..lifecycle import REASON_MAX_LENGTH, STAFF_RETIREMENT_RULES
from ..models import ArenaModel, ChangeRequest, LifecycleEvent, Provider

PUBLIC_FIELDS = [
    "id",
    "name",
    "provider",
    "access_kind",
    "licence",
    "description",
    "knowledge_cutoff",
    "status",
    "listed_at",
    "retired_at",
]


class ProviderField(serializers.SlugRelatedField):
    def __init__(self, **kwargs):
        super().__init__(slug_field="slug", **kwargs)

    def get_queryset(self):
        # Only providers the caller belongs to can be named as the owner of a new model.
        request = self.context["request"]
        return Provider.objects.filter(memberships__user=request.user)


class ArenaModelSerializer(serializers.ModelSerializer):
    """What everyone may see of a model."""

    provider = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = ArenaModel
        fields = PUBLIC_FIELDS
        read_only_fields = PUBLIC_FIELDS


class ChangeRequestSerializer(serializers.ModelSerializer):
    """A change of access or endpoint waiting for staff; the model is served as approved until then."""

    summary = serializers.CharField(source="describe", read_only=True)

    class Meta:
        model = ChangeRequest
        fields = [
            "id",
            "state",
            "summary",
            "access_kind",
            "endpoint_base_url",
            "endpoint_model_id",
            "replaces_api_key",
            "requested_at",
        ]
        read_only_fields = fields


class OwnArenaModelSerializer(serializers.ModelSerializer):
    """A provider's view of its own model (and staff's view of any): the whole record.

    The endpoint API key is write-only: once saved it is never returned.
    """

    provider = ProviderField(
        required=False, help_text="Slug of the owning provider; needed only if you belong to several."
    )
    endpoint_api_key = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=1000, style={"input_type": "password"}
    )
    endpoint_api_key_set = serializers.SerializerMethodField()
    pending_change = serializers.SerializerMethodField(
        help_text="A change of access kind, endpoint address or endpoint model id asked for while the model is "
        "in initial rating or listed: it waits for staff, and the fields above stay the approved values "
        "until staff approve it. Withdraw it with POST withdraw-change/."
    )

    class Meta:
        model = ArenaModel
        fields = [
            *PUBLIC_FIELDS,
            "codename",
            "heads_up_requested",
            "votes_counted",
            "status_changed_at",
            "submitted_at",
            "admitted_at",
            "list_after",
            "retire_after",
            "endpoint_base_url",
            "endpoint_model_id",
            "endpoint_api_key",
            "endpoint_api_key_set",
            "temperature",
            "endpoint_last_checked_at",
            "endpoint_offline_since",
            "endpoint_last_error",
            "pending_change",
        ]
        read_only_fields = [
            "id",
            "codename",
            "status",
            "status_changed_at",
            "votes_counted",
            "submitted_at",
            "admitted_at",
            "list_after",
            "listed_at",
            "retire_after",
            "retired_at",
            "endpoint_last_checked_at",
            "endpoint_offline_since",
            "endpoint_last_error",
        ]

    def get_endpoint_api_key_set(self, obj) -> bool:
        return bool(obj.endpoint_api_key)

    @extend_schema_field(ChangeRequestSerializer(allow_null=True))
    def get_pending_change(self, obj) -> dict | None:
        if obj.pk is None:
            return None
        prefetched = getattr(obj, "pending_changes", None)  # the list prefetches them
        change = prefetched[0] if prefetched else None if prefetched is not None else changes.pending_change(obj)
        return ChangeRequestSerializer(change).data if change is not None else None

    def validate_provider(self, provider):
        if self.instance is not None and provider != self.instance.provider:
            raise serializers.ValidationError("A model cannot move to another provider.")
        return provider

    def validate_name(self, name):
        if self.instance is not None and name == self.instance.name:
            return name
        if self.instance is not None and self.instance.status != "draft":
            raise serializers.ValidationError("The public name can only change while the model is a draft.")
        provider = self.instance.provider if self.instance is not None else self._named_provider()
        refusal = names.name_refusal(
            name, provider=provider, exclude_pk=self.instance.pk if self.instance is not None else None
        )
        if refusal:
            raise serializers.ValidationError(refusal)
        return name

    def _named_provider(self) -> Provider | None:
        # validate_name runs before validate() settles the provider; the raw input names it.
        slug = self.initial_data.get("provider") if isinstance(self.initial_data, dict) else None
        providers = self.fields["provider"].get_queryset()
        found = providers.filter(slug=slug).first() if isinstance(slug, str) else None
        if found is None and slug is None:
            only = list(providers[:2])
            found = only[0] if len(only) == 1 else None
        return found

    def validate_endpoint_base_url(self, url):
        # URLField also takes ftp:// and ftps://, but the endpoint is called over HTTP.
        if url and urlsplit(url).scheme.lower() not in ("http", "https"):
            raise serializers.ValidationError("The endpoint must be an http:// or https:// URL.")
        refusal = endpoint_refusal(url) if url else None
        if refusal:
            raise serializers.ValidationError(refusal)
        return url

    def create(self, validated_data):
        try:
            with transaction.atomic():
                return super().create(validated_data)
        except IntegrityError:
            # A name taken by another request between validation and saving is bad input, not a 500.
            refusal = names.name_refusal(validated_data["name"], provider=validated_data["provider"])
            if refusal:
                raise serializers.ValidationError({"name": [refusal]}) from None
            raise

    def update(self, instance, validated_data):
        # An edit has one writer, providers.changes.model_edit: in the pool, a new access kind
        # or endpoint becomes a request staff approve, never a direct write (the API view and the
        # portal call it themselves to report the outcome; save() goes the same way).
        return changes.model_edit(model_id=instance.pk, actor=self.context["request"].user, values=validated_data).model

    def validate(self, attrs):
        if self.instance is None and "provider" not in attrs:
            providers = list(self.fields["provider"].get_queryset()[:2])
            if len(providers) != 1:
                raise serializers.ValidationError(
                    {"provider": "You belong to several providers (or none); name one by its slug."}
                    if providers
                    else {"provider": "You are not a member of any provider."}
                )
            attrs["provider"] = providers[0]
        return attrs


class TransitionSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=REASON_MAX_LENGTH, default="")
    rule = serializers.ChoiceField(
        choices=sorted(rule.value for rule in STAFF_RETIREMENT_RULES),
        required=False,
        allow_blank=True,
        default="",
        help_text="Retire only: the retirement rule applied (default staff_decision). Recorded and public.",
    )


class OutcomeSerializer(serializers.Serializer):
    changed = serializers.BooleanField()
    scheduled = serializers.BooleanField()
    effective_at = serializers.DateTimeField(allow_null=True)
    model = OwnArenaModelSerializer()


class LifecycleEventSerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()

    class Meta:
        model = LifecycleEvent
        fields = [
            "id",
            "action",
            "kind",
            "from_status",
            "to_status",
            "actor",
            "reason",
            "rule",
            "effective_at",
            "created_at",
        ]

    def get_actor(self, obj) -> str | None:
        if obj.actor is None:
            return None
        # Providers see that staff acted, not which staff member.
        viewer = self.context["request"].user
        if obj.actor.is_staff and not viewer.is_staff:
            return "staff"
        return obj.actor.get_username()


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


class RefusalSerializer(ErrorSerializer):
    rule = serializers.CharField()
