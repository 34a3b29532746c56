from __future__ import annotations

from django.db import transaction
from django.db.models import Prefetch
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response

from arenasite.api import json_error

from .. import changes, lifecycle
from ..lifecycle import Action, TransitionRefused
from ..models import ArenaModel, ChangeRequest, sees_every_model
from .serializers import (
    ArenaModelSerializer,
    ErrorSerializer,
    LifecycleEventSerializer,
    OutcomeSerializer,
    OwnArenaModelSerializer,
    RefusalSerializer,
    TransitionSerializer,
)

TERMINAL = (ArenaModel.Status.RETIRED, ArenaModel.Status.REJECTED, ArenaModel.Status.WITHDRAWN)


def _transition_schema(action_name: Action):
    return extend_schema(
        summary=action_name.label,
        request=TransitionSerializer,
        responses={
            200: OutcomeSerializer,
            403: OpenApiResponse(ErrorSerializer, description="Not allowed to take this action"),
            404: OpenApiResponse(ErrorSerializer, description="No such model, or not yours"),
            409: OpenApiResponse(RefusalSerializer, description="Refused by a lifecycle rule"),
        },
    )


class ArenaModelViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Models in the arena. Everyone sees listed models; provider members see all of their own."""

    # Reading is open (get_queryset limits what is visible); writing needs an account,
    # and get_object() hides other providers' models from writers.
    permission_classes = [permissions.IsAuthenticatedOrReadOnly]
    http_method_names = ["get", "post", "patch", "head", "options"]
    # Django's int converter takes ASCII digits only; a plain int() would read "١" (an
    # Arabic-Indic one) as model 1. The router uses path converters for this (see urls.py).
    lookup_value_converter = "int"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ArenaModel.objects.none()
        return ArenaModel.objects.visible_to(self.request.user).select_related("provider").order_by("pk")

    def get_serializer_class(self):
        if self.action in ("create", "partial_update", "update", "metadata"):
            # "metadata" is OPTIONS, which describes what a POST accepts.
            return OwnArenaModelSerializer
        return ArenaModelSerializer

    def _owns(self, obj) -> bool:
        user = self.request.user
        return user.is_authenticated and (
            sees_every_model(user) or any(m.user_id == user.pk for m in obj.provider.memberships.all())
        )

    def list(self, request, *args, **kwargs):
        pending = Prefetch(
            "change_requests",
            queryset=ChangeRequest.objects.filter(state=ChangeRequest.State.PENDING),
            to_attr="pending_changes",
        )
        queryset = self.filter_queryset(self.get_queryset()).prefetch_related("provider__memberships", pending)
        page = self.paginate_queryset(queryset)
        data = [self._represent(obj) for obj in page]
        return self.get_paginated_response(data)

    def retrieve(self, request, *args, **kwargs):
        return Response(self._represent(self.get_object()))

    def _represent(self, obj):
        serializer_class = OwnArenaModelSerializer if self._owns(obj) else ArenaModelSerializer
        return serializer_class(obj, context=self.get_serializer_context()).data

    @extend_schema(request=OwnArenaModelSerializer, responses={201: OwnArenaModelSerializer})
    def create(self, request, *args, **kwargs):
        return super().create(request, *args, **kwargs)

    def get_object(self):
        obj = super().get_object()
        if self.request.method not in permissions.SAFE_METHODS and not self._owns(obj):
            # Another provider's listed model: it exists publicly, but not for this caller to change.
            raise Http404
        return obj

    @extend_schema(
        request=OwnArenaModelSerializer,
        responses={
            200: OwnArenaModelSerializer,
            409: OpenApiResponse(RefusalSerializer, description="Refused by a rule (e.g. a change already pending)"),
        },
        description="Change some fields. For a model in initial rating or listed, a new access kind, endpoint "
        "address or endpoint model id (with an API key sent alongside) becomes `pending_change`: staff approve "
        "it, and the model is served as approved until then. A key sent on its own is replaced at once.",
    )
    def partial_update(self, request, *args, **kwargs):
        with transaction.atomic():
            # Lock the row as transition() does, so an edit is judged against the current status
            # (the name only while a draft, nothing once terminal) and cannot race a transition.
            model_id = self.get_object().pk
            instance = ArenaModel.objects.select_for_update().get(pk=model_id)
            serializer = self.get_serializer(instance, data=request.data, partial=True)
            serializer.is_valid(raise_exception=True)
            self._check_may_edit(instance)
            try:
                outcome = changes.model_edit(model_id=model_id, actor=request.user, values=serializer.validated_data)
            except TransitionRefused as exc:
                return json_error(exc.detail, status.HTTP_409_CONFLICT, rule=exc.rule)
            except changes.InvalidName as exc:
                raise ValidationError({"name": [str(exc)]}) from None
        return Response(self.get_serializer(outcome.model).data)

    def _check_may_edit(self, model):
        user = self.request.user
        is_member = any(m.user_id == user.pk for m in model.provider.memberships.all())
        if not is_member and not user.has_perm("providers.change_arenamodel"):
            raise PermissionDenied("Only the provider's members and staff who may change models may edit it.")
        if model.status in TERMINAL:
            raise PermissionDenied(f"A {model.get_status_display().lower()} model cannot be edited.")

    @extend_schema(
        summary="Withdraw the pending change of access or endpoint",
        request=None,
        responses={
            200: OwnArenaModelSerializer,
            403: OpenApiResponse(ErrorSerializer, description="Not allowed to edit this model"),
            404: OpenApiResponse(ErrorSerializer, description="No such model, or not yours"),
            409: OpenApiResponse(RefusalSerializer, description="No change waits for staff"),
        },
    )
    @action(detail=True, methods=["post"], url_path="withdraw-change")
    def withdraw_change(self, request, pk=None):
        """Withdraw the model's change request; it keeps being served with its approved values."""
        model = self.get_object()
        self._check_may_edit(model)
        try:
            changes.change_withdraw(model_id=model.pk, actor=request.user)
        except TransitionRefused as exc:
            return json_error(exc.detail, status.HTTP_409_CONFLICT, rule=exc.rule)
        model.refresh_from_db()
        return Response(OwnArenaModelSerializer(model, context=self.get_serializer_context()).data)

    @extend_schema(responses={200: LifecycleEventSerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=None)
    def events(self, request, pk=None):
        """The lifecycle log of one of your models (or, for staff, of any model)."""
        model = self.get_object()
        if not self._owns(model):
            return json_error("Not found.", status.HTTP_404_NOT_FOUND)
        events = model.events.select_related("actor")
        return Response(LifecycleEventSerializer(events, many=True, context={"request": request}).data)

    def _transition(self, request, pk, action_name: Action):
        model = self.get_object()
        if not lifecycle.may_perform(request.user, model, action_name):
            who = "staff with the lifecycle permission"
            if action_name in lifecycle.PROVIDER_ACTIONS:
                who = f"members of {model.provider.name} and {who}"
            raise PermissionDenied(f"Only {who} may '{action_name.value}' this model.")
        body = TransitionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            outcome = lifecycle.transition(
                model_id=model.pk,
                action=action_name,
                actor=request.user,
                reason=body.validated_data["reason"],
                rule=body.validated_data["rule"],
            )
        except TransitionRefused as exc:
            return json_error(exc.detail, status.HTTP_409_CONFLICT, rule=exc.rule)
        # The serializer gets the model instance itself: feeding it already serialized data
        # made every transition fail with a 500 after it had been committed.
        data = {
            "changed": outcome.changed,
            "scheduled": outcome.scheduled,
            "effective_at": outcome.event.effective_at if outcome.event else None,
            "model": outcome.model,
        }
        return Response(OutcomeSerializer(data, context=self.get_serializer_context()).data)

    @_transition_schema(Action.SUBMIT)
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        return self._transition(request, pk, Action.SUBMIT)

    @_transition_schema(Action.WITHDRAW)
    @action(detail=True, methods=["post"])
    def withdraw(self, request, pk=None):
        return self._transition(request, pk, Action.WITHDRAW)

    @_transition_schema(Action.REQUEST_RETIREMENT)
    @action(detail=True, methods=["post"], url_path="request-retirement")
    def request_retirement(self, request, pk=None):
        return self._transition(request, pk, Action.REQUEST_RETIREMENT)

    @_transition_schema(Action.ADMIT)
    @action(detail=True, methods=["post"])
    def admit(self, request, pk=None):
        return self._transition(request, pk, Action.ADMIT)

    @_transition_schema(Action.REJECT)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        return self._transition(request, pk, Action.REJECT)

    @_transition_schema(Action.PUBLISH)
    @action(detail=True, methods=["post"])
    def publish(self, request, pk=None):
        return self._transition(request, pk, Action.PUBLISH)

    @_transition_schema(Action.RETIRE)
    @action(detail=True, methods=["post"])
    def retire(self, request, pk=None):
        return self._transition(request, pk, Action.RETIRE)
