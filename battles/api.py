"""The battle flow as JSON under /api/v1/battles/: create, read, add a turn, stop or
regenerate the answers, vote. One ViewSet, the verbs on a battle as its actions; routed
with the rest of the API in arenasite/api_urls.py.

The rules are those of the pages (battles/arena.py does the work); a battle belongs to
the voter who started it (session cookie or account), and anyone else gets 404.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from arenasite.serializers import ErrorSerializer

from . import arena, challenge
from .models import Battle, Winner
from .voters import forget_new_voter, judge_for, voter_for


class BattleMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(["user", "assistant"])
    content = serializers.CharField()


BattleSerializer = inline_serializer(
    "Battle",
    {
        "id": serializers.CharField(),
        "anony": serializers.BooleanField(help_text="False in side-by-side mode: names shown, the vote never counts."),
        "complete": serializers.BooleanField(help_text="Both answers of the latest turn are in; a vote is possible."),
        "status": serializers.ChoiceField(Battle.Status.values),
        "answer_a": serializers.ChoiceField(Battle.AnswerState.choices),
        "answer_b": serializers.ChoiceField(Battle.AnswerState.choices),
        "error": serializers.CharField(allow_null=True, help_text="Why the battle ended, when a model failed."),
        "turn": serializers.IntegerField(),
        "attempt": serializers.IntegerField(
            help_text="Which answers of the latest turn these are: 1, then one more per regenerate."
        ),
        "regenerated": serializers.IntegerField(
            help_text="How many earlier answers of this battle a regenerate replaced (kept, not shown here)."
        ),
        "max_turns": serializers.IntegerField(),
        "conversation_a": BattleMessageSerializer(many=True),
        "conversation_b": BattleMessageSerializer(many=True),
        "winner": serializers.ChoiceField(Winner.values, required=False, help_text="After the vote."),
        "model_a": serializers.CharField(required=False, help_text="After the vote (side-by-side: always)."),
        "model_b": serializers.CharField(required=False, help_text="After the vote (side-by-side: always)."),
    },
)

VoteResultSerializer = inline_serializer(
    "VoteResult",
    {
        "winner": serializers.ChoiceField(Winner.values),
        "model_a": serializers.CharField(help_text="A model never listed is named by its codename."),
        "model_b": serializers.CharField(),
    },
)


class TextField(serializers.CharField):
    """A CharField that takes only strings: DRF would turn 42 or true into text."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class PromptSerializer(serializers.Serializer):
    prompt = TextField(trim_whitespace=False, help_text="The user's message.")


class NewBattleSerializer(PromptSerializer):
    model_a = TextField(required=False, help_text="Side-by-side mode: a listed model's name.")
    model_b = TextField(required=False, help_text="Side-by-side mode: a listed model's name.")
    altcha = TextField(
        required=False,
        help_text="A solved proof-of-work challenge (GET /api/v1/challenge/), base64, when the site asks for one: "
        "before a session's first battle and every few battles after.",
    )


ChallengeSerializer = inline_serializer(
    "Challenge",
    {
        "parameters": serializers.DictField(
            help_text="ALTCHA v2: algorithm (PBKDF2/SHA-256), nonce, salt, cost, keyLength, keyPrefix, expiresAt."
        ),
        "signature": serializers.CharField(),
    },
)


class VoteSerializer(serializers.Serializer):
    winner = serializers.ChoiceField(Winner.values)


def battle_payload(battle: Battle) -> dict:
    vote = getattr(battle, "vote", None)  # the reverse one-to-one raises an AttributeError when absent
    data = {
        "id": battle.question_id,
        "anony": battle.anony,
        "complete": battle.complete,
        "status": battle.status,
        "answer_a": battle.state_a,
        "answer_b": battle.state_b,
        "error": battle.failure or None,
        "turn": battle.turn,
        "attempt": battle.attempt,
        "regenerated": len(battle.discarded),
        "max_turns": settings.ARENA_MAX_TURNS,
        "conversation_a": battle.conversation_a,
        "conversation_b": battle.conversation_b,
    }
    if vote is not None:
        data["winner"] = vote.winner
    if vote is not None or not battle.anony:
        data["model_a"], data["model_b"] = arena.revealed_names(battle)
    return data


def vote_payload(battle: Battle, winner: str) -> dict:
    model_a, model_b = arena.revealed_names(battle)
    return {"winner": winner, "model_a": model_a, "model_b": model_b}


def refused(exc: arena.BattleRefused) -> Response:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, arena.TooManyBattles) else None
    return Response({"detail": exc.message}, status=exc.status_code, headers=headers)


CHALLENGE_REQUIRED = OpenApiResponse(
    ErrorSerializer,
    description="A solved proof-of-work challenge is needed (missing, wrong, expired or used before): "
    "GET /api/v1/challenge/, solve it, and send the solution as `altcha`. Nothing was stored.",
)
TOO_MANY = OpenApiResponse(
    ErrorSerializer,
    description="A limit on starting battles or turns was reached (docs/security.md); the Retry-After header says "
    "after how many seconds to try again. Nothing was stored.",
)


CONFLICT = OpenApiResponse(ErrorSerializer, description="Not possible in the battle's state; nothing was changed.")


class BattleViewSet(viewsets.ViewSet):
    """A voter's battles: start one, read it, ask another turn, stop or regenerate the answers,
    vote. The answers stream at `stream/` (battles/stream_api.py)."""

    permission_classes = [permissions.AllowAny]
    lookup_url_kwarg = "battle_id"
    lookup_value_converter = "str"

    @extend_schema(
        request=NewBattleSerializer,
        responses={
            201: BattleSerializer,
            400: ErrorSerializer,
            403: CHALLENGE_REQUIRED,
            429: TOO_MANY,
            503: OpenApiResponse(ErrorSerializer, description="Too few models can answer right now."),
        },
    )
    def create(self, request):
        """Start a battle; both answers are generated in the background."""
        form = NewBattleSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        try:
            challenge.spend(request, data.get("altcha"))
        except challenge.ChallengeRequired as exc:
            return Response({"detail": exc.message}, status=status.HTTP_403_FORBIDDEN)
        try:
            models = None
            if "model_a" in data or "model_b" in data:
                models = arena.pick_by_names(data.get("model_a"), data.get("model_b"))
            battle = arena.start_battle(prompt=data["prompt"], voter=voter_for(request), models=models)
        except arena.BattleRefused as exc:
            forget_new_voter(request)
            return refused(exc)
        return Response(battle_payload(battle), status=status.HTTP_201_CREATED)

    @extend_schema(
        responses={200: BattleSerializer, 404: ErrorSerializer},
    )
    def retrieve(self, request, battle_id: str):
        """The battle so far: both answers as they stream in; the names once voted."""
        try:
            battle = arena.battle_of(battle_id, judge_for(request, create=False))
        except arena.BattleRefused as exc:
            return refused(exc)
        return Response(battle_payload(battle))

    @extend_schema(
        request=PromptSerializer,
        responses={
            200: BattleSerializer,
            400: ErrorSerializer,
            404: ErrorSerializer,
            409: ErrorSerializer,
            429: TOO_MANY,
        },
    )
    @action(detail=True, methods=["post"])
    def turns(self, request, battle_id: str):
        """Ask both models one more question (up to the turn limit, before the vote)."""
        form = PromptSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        voter = voter_for(request, create=False)
        try:
            battle = arena.battle_of(battle_id, voter and voter.judge)
            battle = arena.add_turn(battle, form.validated_data["prompt"], voter)
        except arena.BattleRefused as exc:
            return refused(exc)
        return Response(battle_payload(battle))

    @extend_schema(
        request=None,
        responses={200: BattleSerializer, 404: ErrorSerializer, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def stop(self, request, battle_id: str):
        """Stop both answers of the latest turn. What was written is kept (`answer_a`/`answer_b`
        `stopped`); the battle can still be voted (the vote is kept but does not count for the
        leaderboard) or regenerated. 409 unless the answers are still being written."""
        try:
            battle = arena.battle_of(battle_id, judge_for(request, create=False))
            battle = arena.stop_answers(battle)
        except arena.BattleRefused as exc:
            return refused(exc)
        return Response(battle_payload(battle))

    @extend_schema(
        request=None,
        responses={200: BattleSerializer, 404: ErrorSerializer, 409: CONFLICT, 429: TOO_MANY},
    )
    @action(detail=True, methods=["post"])
    def regenerate(self, request, battle_id: str):
        """Both models answer the latest turn again, before the vote; the earlier answers are kept
        in the battle's record but leave the conversation. Counted like a turn against the limits.
        409 after the vote, after a failure, or while answering."""
        voter = voter_for(request, create=False)
        try:
            battle = arena.battle_of(battle_id, voter and voter.judge)
            battle = arena.regenerate(battle, voter)
        except arena.BattleRefused as exc:
            return refused(exc)
        return Response(battle_payload(battle))

    @extend_schema(
        request=VoteSerializer,
        responses={200: VoteResultSerializer, 400: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer},
    )
    @action(detail=True, methods=["post"])
    def vote(self, request, battle_id: str):
        """Vote once; the answer reveals the names. The same vote again answers the same."""
        form = VoteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        voter = voter_for(request, create=False)
        try:
            battle = arena.battle_of(battle_id, voter and voter.judge, fields=arena.HANDLE_FIELDS)
            vote, _ = arena.cast_vote(battle, form.validated_data["winner"], voter)
        except arena.BattleRefused as exc:
            return refused(exc)
        return Response(vote_payload(battle, vote.winner))


class ChallengeApi(APIView):
    """A proof-of-work challenge (ALTCHA v2) to solve before starting a battle.

    Find the counter whose PBKDF2 key (over nonce and counter, with the salt and cost
    given) starts with `keyPrefix`; the `altcha` libraries do it (`solve_challenge`). Send
    the base64 payload of challenge and solution as `altcha` with the next new battle.
    """

    permission_classes = [permissions.AllowAny]
    authentication_classes: list = []

    @extend_schema(responses={200: ChallengeSerializer})
    def get(self, request):
        response = Response(challenge.new_challenge())
        response["Cache-Control"] = "no-store"
        return response
