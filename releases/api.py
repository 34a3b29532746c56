"""Community releases (published ones, for anyone) and provider early access in the API."""

from __future__ import annotations

import os

from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, negotiation, permissions, serializers, status, throttling, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.settings import api_settings

from arenasite.api import json_error
from arenasite.serializers import ErrorSerializer
from providers import access
from providers.api.serializers import ProviderField

from . import files, sharing
from .models import DataRelease, DataSharingAgreement, Download, ProviderShare


class ReleaseSerializer(serializers.ModelSerializer):
    files = serializers.SerializerMethodField()
    excluded = serializers.SerializerMethodField()

    class Meta:
        model = DataRelease
        fields = ["id", "cutoff", "published_at", "battle_count", "excluded_count", "excluded", "files"]

    def get_files(self, release: DataRelease) -> dict[str, str]:
        request = self.context.get("request")
        urls = {name: reverse("releases:file", args=[release.pk, name]) for name in files.FILE_NAMES}
        return {name: request.build_absolute_uri(url) if request else url for name, url in urls.items()}

    def get_excluded(self, release: DataRelease) -> dict[str, int]:
        """Battles left out for personal data, by kind."""
        return (release.manifest.get("excluded") or {}).get("personal_data") or {}


class ReleaseViewSet(viewsets.ReadOnlyModelViewSet):
    """Published community releases, with links to their files; an unpublished one is not found."""

    permission_classes = [permissions.AllowAny]
    serializer_class = ReleaseSerializer
    lookup_value_converter = "int"

    def get_queryset(self):
        return DataRelease.objects.filter(state=DataRelease.State.PUBLISHED).order_by("-cutoff")

    def list(self, request, *args, **kwargs):
        """Published community releases, newest first, with links to their files."""
        return super().list(request, *args, **kwargs)

    def retrieve(self, request, *args, **kwargs):
        """One published release; an unpublished one is not found."""
        return super().retrieve(request, *args, **kwargs)


# --- provider early access: agreements, shares, downloads ----------------------------------------
#
# For provider members (Bearer token or a browser session). A member sees the rows of the
# providers they belong to; anything else is "not found", so ids do not leak. Staff who hold
# the model's view permission see every row, read-only, and may download shares to review
# them (not logged against the provider). Requesting a share or downloading one without an
# approved agreement on the current terms is 403: it is the member's own provider, so the
# answer leaks nothing.


@extend_schema_field(OpenApiTypes.STR)
class ProviderSlugField(ProviderField):
    """A provider of the caller's, by slug."""


class ProviderChoiceSerializer(serializers.Serializer):
    provider = ProviderSlugField(
        required=False, help_text="Slug of the provider; needed only if you belong to several."
    )

    def validate(self, attrs):
        if "provider" not in attrs:
            providers = list(self.fields["provider"].get_queryset()[:2])
            if len(providers) != 1:
                raise serializers.ValidationError(
                    {"provider": "You belong to several providers; name one by its slug."}
                    if providers
                    else {"provider": "You are not a member of any provider."}
                )
            attrs["provider"] = providers[0]
        return attrs


class AgreementSerializer(serializers.ModelSerializer):
    provider = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    accepted_by = serializers.SerializerMethodField()

    class Meta:
        model = DataSharingAgreement
        fields = ["id", "provider", "terms_version", "state", "accepted_by", "accepted_at", "decided_at", "reason"]
        read_only_fields = fields

    def get_accepted_by(self, agreement: DataSharingAgreement) -> str:
        return agreement.accepted_by.get_username()


class TermsSerializer(serializers.Serializer):
    version = serializers.CharField()
    text = serializers.CharField(help_text="Markdown.")


class ShareSerializer(serializers.ModelSerializer):
    provider = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    requested_by = serializers.SerializerMethodField()
    files = serializers.SerializerMethodField()

    class Meta:
        model = ProviderShare
        fields = [
            "id",
            "provider",
            "state",
            "requested_by",
            "requested_at",
            "built_at",
            "battle_count",
            "excluded_count",
            "manifest",
            "files",
        ]
        read_only_fields = fields

    def get_requested_by(self, share: ProviderShare) -> str | None:
        return share.requested_by.get_username() if share.requested_by else None

    def get_files(self, share: ProviderShare) -> dict[str, str]:
        """Download links by format, once the share is ready."""
        if share.state != ProviderShare.State.READY:
            return {}
        request = self.context.get("request")
        url = reverse("share-download", args=[share.pk])
        links = {fmt: f"{url}?format={fmt}" for fmt in files.FORMAT_FILES}
        return {fmt: request.build_absolute_uri(link) if request else link for fmt, link in links.items()}


class DownloadSerializer(serializers.ModelSerializer):
    user = serializers.SerializerMethodField()
    provider = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Download
        fields = ["id", "at", "user", "provider", "share", "release", "format", "bytes"]
        read_only_fields = fields

    def get_user(self, download: Download) -> str | None:
        return download.user.get_username() if download.user else None


class ShareDownloadThrottle(throttling.ScopedRateThrottle):
    """DRF's scoped throttle, reading the rates at each request rather than at import, so a
    changed REST_FRAMEWORK setting (tests, override_settings) applies."""

    def get_rate(self):
        self.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
        return super().get_rate()


class FileNegotiation(negotiation.DefaultContentNegotiation):
    """`?format=` names the file to download here, not a renderer: errors are JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ProviderScopedViewSet(viewsets.GenericViewSet):
    permission_classes = [permissions.IsAuthenticated]
    lookup_value_converter = "int"
    view_permission = ""

    def get_queryset(self):
        queryset = super().get_queryset()
        if getattr(self, "swagger_fake_view", False):
            return queryset.none()
        user = self.request.user
        if self.sees_all(user):
            return queryset
        return queryset.filter(provider__memberships__user=user)

    def sees_all(self, user) -> bool:
        return access.staff_with(user, self.view_permission)

    def chosen_provider(self, request):
        body = ProviderChoiceSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        return body.validated_data["provider"]


_NOT_FOUND = OpenApiResponse(ErrorSerializer, description="No such object, or not your provider's")


@extend_schema_view(
    list=extend_schema(summary="Your providers' data-sharing agreements"),
    retrieve=extend_schema(summary="One agreement", responses={200: AgreementSerializer, 404: _NOT_FOUND}),
)
class AgreementViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProviderScopedViewSet):
    """Data-sharing agreements: accept the terms for your provider; staff approve or revoke in admin."""

    queryset = DataSharingAgreement.objects.select_related("provider", "accepted_by").order_by("-accepted_at", "-id")
    serializer_class = AgreementSerializer
    view_permission = "releases.view_datasharingagreement"

    @extend_schema(
        summary="Accept the current data-sharing terms for your provider",
        request=ProviderChoiceSerializer,
        responses={
            201: AgreementSerializer,
            200: OpenApiResponse(AgreementSerializer, description="Already accepted (pending or approved)"),
            400: OpenApiResponse(ErrorSerializer, description="Not a provider of yours"),
        },
    )
    def create(self, request, *args, **kwargs):
        provider = self.chosen_provider(request)
        agreement, created = sharing.agreement_accept(provider=provider, user=request.user)
        status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(self.get_serializer(agreement).data, status=status_code)

    @extend_schema(summary="The current data-sharing terms", responses={200: TermsSerializer})
    @action(detail=False, methods=["get"], permission_classes=[permissions.AllowAny], pagination_class=None)
    def terms(self, request):
        """The terms a provider accepts with POST /api/v1/agreements/ (Markdown)."""
        return Response(TermsSerializer({"version": sharing.terms_version(), "text": sharing.terms_text()}).data)


@extend_schema_view(
    list=extend_schema(summary="Your providers' shares"),
    retrieve=extend_schema(summary="One share", responses={200: ShareSerializer, 404: _NOT_FOUND}),
)
class ShareViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProviderScopedViewSet):
    """Early data for providers: pool battles with your models, not yet in a published release."""

    queryset = ProviderShare.objects.select_related("provider", "requested_by").order_by("-requested_at", "-id")
    serializer_class = ShareSerializer
    view_permission = "releases.view_providershare"
    throttle_scope = "downloads"  # used by the download action's throttle only

    @extend_schema(
        summary="Request a share; it is built in the background",
        request=ProviderChoiceSerializer,
        responses={
            201: ShareSerializer,
            400: OpenApiResponse(ErrorSerializer, description="Not a provider of yours"),
            403: OpenApiResponse(ErrorSerializer, description="No approved data-sharing agreement"),
        },
    )
    def create(self, request, *args, **kwargs):
        provider = self.chosen_provider(request)
        try:
            share = sharing.share_request(provider=provider, user=request.user)
        except sharing.SharingRefused as exc:
            return json_error(str(exc), status.HTTP_403_FORBIDDEN)
        return Response(self.get_serializer(share).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Download a file of a ready share",
        parameters=[
            OpenApiParameter(
                "format",
                str,
                enum=list(files.FORMAT_FILES),
                required=True,
                description="jsonl or parquet (the battles), manifest (counts and checksums), card (the data card)",
            )
        ],
        responses={
            (200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY, description="The file"),
            400: OpenApiResponse(ErrorSerializer, description="Unknown format"),
            403: OpenApiResponse(ErrorSerializer, description="No approved data-sharing agreement"),
            404: _NOT_FOUND,
            409: OpenApiResponse(ErrorSerializer, description="The share is not ready"),
            429: OpenApiResponse(ErrorSerializer, description="Too many downloads; retry later"),
        },
    )
    @action(
        detail=True,
        methods=["get"],
        throttle_classes=[ShareDownloadThrottle],
        content_negotiation_class=FileNegotiation,
    )
    def download(self, request, pk=None):
        share = self.get_object()
        fmt = request.query_params.get("format", "")
        if fmt not in files.FORMAT_FILES:
            return json_error(f"format must be one of: {', '.join(files.FORMAT_FILES)}.", status.HTTP_400_BAD_REQUEST)
        member = access.member_of(request.user, share.provider)
        if member:
            why_not = sharing.refusal(share.provider)
            if why_not is not None:
                return json_error(why_not, status.HTTP_403_FORBIDDEN)
        if share.state != ProviderShare.State.READY:
            return json_error(f"Share {share.pk} is {share.get_state_display().lower()}, not ready.", 409)
        path = sharing.share_file(share, fmt)
        if not path.is_file():
            return json_error("The share's files are missing; request a new share.", status.HTTP_404_NOT_FOUND)
        handle = open(path, "rb")  # noqa: SIM115 - FileResponse closes it
        Download.objects.create(
            user=request.user,
            provider=share.provider if member else None,  # staff reviewing are not in the provider's log
            share=share,
            format=fmt,
            bytes=os.fstat(handle.fileno()).st_size,
        )
        name = f"arenasite-share-{share.pk}-{files.FORMAT_FILES[fmt]}"
        return FileResponse(handle, as_attachment=True, filename=name)


@extend_schema_view(list=extend_schema(summary="Your providers' download log"))
class DownloadViewSet(mixins.ListModelMixin, ProviderScopedViewSet):
    """Every share file your providers' members downloaded: who, what, when, size (staff: all downloads)."""

    queryset = Download.objects.select_related("user", "provider").order_by("-at", "-id")
    serializer_class = DownloadSerializer
    view_permission = "releases.view_download"
