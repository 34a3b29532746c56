from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from django.contrib.auth.models import AnonymousUser
from django.db.models import Prefetch, QuerySet
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotAuthenticated, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from arenasite.api import json_error
from arenasite.serializers import ErrorSerializer

from .. import access, lifecycle, registration
from ..lifecycle import Action, TransitionRefused
from ..models import ArenaModel, ChangeRequest
from .serializers import (
    ArenaModelSerializer,
    LifecycleEventSerializer,
    OutcomeSerializer,
    OwnArenaModelSerializer,
    RefusalSerializer,
    TransitionSerializer,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def _acting_user(request: Request) -> User:
    """The account a write acts as; the permission classes let no anonymous request get here."""
    user = request.user
    if isinstance(user, AnonymousUser):
        raise NotAuthenticated()
    return user


F = TypeVar("F", bound=Callable[..., Any])


def _transition_schema(action_name: Action) -> Callable[[F], F]:
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

    def get_queryset(self) -> QuerySet[ArenaModel]:
        if getattr(self, "swagger_fake_view", False):
            return ArenaModel.objects.none()
        return ArenaModel.objects.visible_to(self.request.user).select_related("provider").order_by("pk")

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        if self.action in ("create", "partial_update", "update", "metadata"):
            # "metadata" is OPTIONS, which describes what a POST accepts.
            return OwnArenaModelSerializer
        return ArenaModelSerializer

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        pending = Prefetch(
            "change_requests",
            queryset=ChangeRequest.objects.filter(state=ChangeRequest.State.PENDING),
            to_attr="pending_changes",
        )
        # The memberships let access.sees_record() answer for the whole page without a query per model.
        queryset = self.filter_queryset(self.get_queryset()).prefetch_related("provider__memberships", pending)
        page = self.paginate_queryset(queryset) or []
        data = [self._represent(obj) for obj in page]
        return self.get_paginated_response(data)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(self._represent(self.get_object()))

    def _represent(self, obj: ArenaModel) -> dict[str, Any]:
        whole = access.sees_record(self.request.user, obj)
        serializer_class = OwnArenaModelSerializer if whole else ArenaModelSerializer
        return serializer_class(obj, context=self.get_serializer_context()).data

    @extend_schema(request=OwnArenaModelSerializer, responses={201: OwnArenaModelSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # The serializer checks the shape; providers.registration the rules. (No docstring: the
        # schema would show it as the operation's description.)
        user = _acting_user(request)
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        values = dict(serializer.validated_data)
        try:
            provider = registration.provider_for(user=user, slug=values.pop("provider", None))
            model = registration.model_register(provider=provider, user=user, values=values)
        except registration.InvalidFields as exc:
            raise ValidationError(exc.errors) from None
        data = self.get_serializer(model).data
        return Response(data, status=status.HTTP_201_CREATED, headers=self.get_success_headers(data))

    def get_object(self) -> ArenaModel:
        obj: ArenaModel = super().get_object()
        if self.request.method not in permissions.SAFE_METHODS and not access.sees_record(self.request.user, obj):
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
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # The serializer checks the shape; providers.registration judges the edit under the row
        # lock (who may, the name only while a draft, nothing once terminal) and writes it
        # through providers.changes.
        user = _acting_user(request)
        model = self.get_object()
        serializer = self.get_serializer(model, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        values = dict(serializer.validated_data)
        slug = values.pop("provider", None)
        try:
            outcome = registration.model_update(model_id=model.pk, user=user, values=values, provider_slug=slug)
        except registration.InvalidFields as exc:
            raise ValidationError(exc.errors) from None
        except TransitionRefused as exc:
            return json_error(exc.detail, status.HTTP_409_CONFLICT, rule=exc.rule)
        return Response(self.get_serializer(outcome.model).data)

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
    def withdraw_change(self, request: Request, pk: str | None = None) -> Response:
        """Withdraw the model's change request; it keeps being served with its approved values."""
        model = self.get_object()
        try:
            registration.change_withdraw(model_id=model.pk, user=_acting_user(request))
        except TransitionRefused as exc:
            return json_error(exc.detail, status.HTTP_409_CONFLICT, rule=exc.rule)
        model.refresh_from_db()
        return Response(OwnArenaModelSerializer(model, context=self.get_serializer_context()).data)

    @extend_schema(responses={200: LifecycleEventSerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=None)
    def events(self, request: Request, pk: str | None = None) -> Response:
        """The lifecycle log of one of your models (or, for staff, of any model)."""
        model = self.get_object()
        if not access.sees_record(request.user, model):
            return json_error("Not found.", status.HTTP_404_NOT_FOUND)
        events = model.events.select_related("actor")
        return Response(LifecycleEventSerializer(events, many=True, context={"request": request}).data)

    def _transition(self, request: Request, action_name: Action) -> Response:
        model = self.get_object()
        if not access.may_transition(request.user, model, action_name):
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
                actor=_acting_user(request),
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
    def submit(self, request: Request, pk: str | None = None) -> Response:
        return self._transition(request, Action.SUBMIT)

    @_transition_schema(Action.WITHDRAW)
    @action(detail=True, methods=["post"])
    def withdraw(self, request: Request, pk: str | None = None) -> Response:
        return self._transition(request, Action.WITHDRAW)

    @_transition_schema(Action.REQUEST_RETIREMENT)
    @action(detail=True, methods=["post"], url_path="request-retirement")
    def request_retirement(self, request: Request, pk: str | None = None) -> Response:
        return self._transition(request, Action.REQUEST_RETIREMENT)

    @_transition_schema(Action.ADMIT)
    @action(detail=True, methods=["post"])
    def admit(self, request: Request, pk: str | None = None) -> Response:
        return self._transition(request, Action.ADMIT)

    @_transition_schema(Action.REJECT)
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str | None = None) -> Response:
        return self._transition(request, Action.REJECT)

    @_transition_schema(Action.PUBLISH)
    @action(detail=True, methods=["post"])
    def publish(self, request: Request, pk: str | None = None) -> Response:
        return self._transition(request, Action.PUBLISH)

    @_transition_schema(Action.RETIRE)
    @action(detail=True, methods=["post"])
    def retire(self, request: Request, pk: str | None = None) -> Response:
        return self._transition(request, Action.RETIRE)
