"""The load benchmark's second floor: the project's own Django settings, middleware, sessions
and DRF, with views that do nothing but what every battle request does before its work
(find the voter in the session, parse the JSON body, render a JSON answer). What it reaches
is the most an implementation of the battle API in this stack can reach on the machine.

benchmarks/arena_load.py serves it with gunicorn as arenasite.wsgi with
DJANGO_SETTINGS_MODULE=django_floor_settings, which takes arenasite.settings and routes
every URL here. Battle ids carry their creation time, so any worker can answer a poll.
"""

from __future__ import annotations

import itertools
import time
import uuid

from django.http import JsonResponse
from django.urls import path
from http_floor import ANSWER_AFTER
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
        started = float(battle_id.split("-")[0])
        status = "ready" if time.time() - started >= ANSWER_AFTER else "answering"
        return Response({"id": battle_id, "status": status})


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
    path("api/v1/battles/<str:battle_id>/vote/", Vote.as_view()),
    path("api/v1/leaderboard/", Leaderboard.as_view()),
]
