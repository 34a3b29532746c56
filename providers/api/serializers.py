from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from arenasite.serializers import ErrorSerializer

from .. import access, changes
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
    """One of the caller's providers, by slug (the data-sharing API names providers with it)."""

    def __init__(self, **kwargs: Any):
        super().__init__(slug_field="slug", **kwargs)

    def get_queryset(self) -> QuerySet[Provider]:
        # Only providers the caller belongs to can be named.
        request = self.context["request"]
        return Provider.objects.filter(memberships__user=request.user)


class ProviderSlugField(serializers.CharField):
    """The owning provider, written and read as its slug. Written as a plain string: which
    providers a caller may name is the service's rule (providers.registration.provider_for),
    which answers alike whether another provider exists or not."""

    def to_representation(self, value: Any) -> str:  # the model's provider
        return str(value.slug)


class ArenaModelSerializer(serializers.ModelSerializer):
    """What everyone may see of a model."""

    provider: serializers.SlugRelatedField[Provider] = serializers.SlugRelatedField(slug_field="slug", read_only=True)

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

    As input it checks shapes only (types, lengths, choices); the rules of registering and
    editing (who, which names, which endpoints, in which state) are providers.registration's,
    which the view calls with the validated data. The endpoint API key is write-only: once
    saved it is never returned.
    """

    provider = ProviderSlugField(
        required=False, max_length=100, help_text="Slug of the owning provider; needed only if you belong to several."
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

    def get_endpoint_api_key_set(self, obj: ArenaModel) -> bool:
        return bool(obj.endpoint_api_key)

    @extend_schema_field(ChangeRequestSerializer(allow_null=True))
    def get_pending_change(self, obj: ArenaModel) -> dict[str, Any] | None:
        if obj.pk is None:
            return None
        prefetched = getattr(obj, "pending_changes", None)  # the list prefetches them
        change = prefetched[0] if prefetched else None if prefetched is not None else changes.pending_change(obj)
        return ChangeRequestSerializer(change).data if change is not None else None

    def create(self, validated_data: dict[str, Any]) -> ArenaModel:
        raise NotImplementedError("A model is registered through providers.registration.model_register().")

    def update(self, instance: ArenaModel, validated_data: dict[str, Any]) -> ArenaModel:
        # The one write path of an edit is the service, whose rules save() would skip.
        raise NotImplementedError("A model is edited through providers.registration.model_update().")


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

    def get_actor(self, obj: LifecycleEvent) -> str | None:
        return access.actor_label(obj.actor, viewer=self.context["request"].user)


class RefusalSerializer(ErrorSerializer):
    """A lifecycle action refused, with the policy rule that refused it."""

    rule = serializers.CharField()
