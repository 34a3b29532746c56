"""The load benchmark's second floor: the project's own Django settings, middleware, sessions
and DRF, with views that do nothing but what every battle request does before its work
(find the voter in the session, parse the JSON body, render a JSON answer; for the stream,
an async view streaming the site's events). What it reaches is the most an implementation
of the battle API in this stack can reach on the machine.

benchmarks/arena_load.py serves it under the same ASGI server as the site, as
arenasite.asgi with DJANGO_SETTINGS_MODULE=django_floor_settings, which takes
arenasite.settings and routes every URL here. Battle ids carry their creation time, so any
worker can answer a poll or a stream.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid

from asgiref.sync import sync_to_async
from django.http import JsonResponse, StreamingHttpResponse
from django.urls import path
from http_floor import battle_body, stream_events, until_answered
from rest_framework import permissions
from rest_framework.response import Response
from rest_framework.views import APIView

_numbers = itertools.count(1)


def _voter(request) -> str:
    """As battles.voters does for a visitor: a random key kept in the session."""
    voter = request.session.get("floor_voter")
    if voter is None:
        voter = uuid.uuid4().hex
        request.session["floor_voter"] = voter
    return voter


class Battles(APIView):
    permission_classes = [permissions.AllowAny]

    def post(self, request):
        _voter(request)
        prompt = str(request.data.get("prompt", ""))
        return Response(
            {"id": f"{time.time():.4f}-{next(_numbers)}", "status": "answering", "turn": 1, "p": len(prompt)},
            status=201,
        )


class BattleDetail(APIView):
    permission_classes = [permissions.AllowAny]

    def get(self, request, battle_id: str):
        _voter(request)
        return Response(battle_body(battle_id, "answering" if until_answered(battle_id) else "ready"))


async def battle_stream(request, battle_id: str):
    # As the site's stream view: the voter found by a sync call, then an async iterator.
    await sync_to_async(_voter)(request)

    async def events():
        await asyncio.sleep(until_answered(battle_id))
        for event in stream_events(battle_id):
            yield event

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-store"
    return response


class Vote(APIView):
    permission_classes = [permissions.AllowAny]

    def post(self, request, battle_id: str):
        _voter(request)
        return Response({"winner": request.data.get("winner"), "model_a": "a", "model_b": "b"})


class Leaderboard(APIView):
    permission_classes = [permissions.AllowAny]

    def get(self, request):
        return Response({"results": []})


def healthz(request):
    return JsonResponse({"ok": True})


urlpatterns = [
    path("healthz", healthz),
    path("api/v1/battles/", Battles.as_view()),
    path("api/v1/battles/<str:battle_id>/", BattleDetail.as_view()),
    path("api/v1/battles/<str:battle_id>/stream/", battle_stream),
    path("api/v1/battles/<str:battle_id>/vote/", Vote.as_view()),
    path("api/v1/leaderboard/", Leaderboard.as_view()),
]
