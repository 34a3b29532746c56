"""Serializers every app's API shares. (Apart from arenasite/api.py, which DRF's settings
import while serializers are being loaded.)"""

from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """The body of every error of the API."""

    detail = serializers.CharField(help_text="What went wrong, as a sentence.")
