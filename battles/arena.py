"""The battle flow, shared by the pages (battles/views.py) and the JSON API (battles/api.py):
start a battle, add a turn, stop or regenerate the answers, vote, reveal, share.

Every refusal is a `BattleRefused` with the HTTP status it maps to and a sentence for the
voter, raised before anything is written. Votes are stored first and judged after: a
vote that must not count keeps its row with `excluded_reason` (see `exclusion_reason`).
"""

from __future__ import annotations

import logging
import secrets
import time as monotonic_time
import uuid
from collections.abc import Sequence
from datetime import datetime, time

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q

from arenasite import clock
from providers.models import ArenaModel

from . import answering, limits, stream_log
from .arena_pool import record_served, sample_pair, sampleable_models
from .identity import identity_probe, revealed_term
from .identity_terms import approved_terms
from .models import Battle, ExclusionReason, FlaggedVoter, Vote, Winner
from .sampling import NotEnoughModels
from .voters import ADDRESS_VOTER, Voter

logger = logging.getLogger(__name__)

# How many times a turn's answers may be regenerated: each one is two more paid model calls
# (limited by the front door's rates too), and the discarded answers stay in the row.
MAX_REGENERATIONS = 5


def stop_wait_seconds() -> float:
    """How long a stop waits for the answering sides to end by themselves: the longest a side
    needs to hear it (at its next checkpoint, when it runs in another process without Redis)."""
    return settings.ARENA_ANSWER_SAVE_INTERVAL + 1.0


class BattleRefused(Exception):
    status_code = 400

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


class InvalidInput(BattleRefused):
    status_code = 400


class BattleNotFound(BattleRefused):
    status_code = 404


class BattleConflict(BattleRefused):
    status_code = 409


class ArenaClosed(BattleRefused):
    status_code = 503


class TooManyBattles(BattleRefused):
    """A limit of battles.limits: answered 429 with Retry-After."""

    status_code = 429

    def __init__(self, message: str, retry_after: int):
        self.retry_after = retry_after
        super().__init__(message)


def _within_limits(voter: Voter) -> None:
    try:
        limits.check_in_flight(voter)
        limits.take_battle_rate(voter)
    except limits.LimitReached as exc:
        raise TooManyBattles(exc.message, exc.retry_after) from exc


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def clean_prompt(prompt: object) -> str:
    """The prompt as stored, or InvalidInput saying what is wrong with it."""
    if not isinstance(prompt, str):
        raise InvalidInput("The prompt must be text.")
    if "\x00" in prompt:
        raise InvalidInput("The prompt contains a NUL character.")
    # A form body's invalid UTF-8 bytes arrive as U+FFFD (Django decodes with errors="replace");
    # a JSON body can carry lone surrogates ("\ud800"), which no database can store.
    if "\ufffd" in prompt or not _encodable(prompt):
        raise InvalidInput("The prompt is not valid UTF-8 text.")
    if not prompt.strip():
        raise InvalidInput("Write a prompt first.")
    limit = settings.ARENA_MAX_PROMPT_CHARS
    if len(prompt) > limit:
        raise InvalidInput(f"The prompt is {len(prompt):,} characters long; the limit is {limit:,}.")
    return prompt


def side_by_side_models():
    """Models a voter may pick by name: listed and able to answer (the pool's listed part)."""
    return sampleable_models().filter(status=ArenaModel.Status.LISTED).order_by("name")


def pick_by_names(name_a: object, name_b: object) -> tuple[ArenaModel, ArenaModel]:
    """The two models of a side-by-side battle, by public name, or InvalidInput."""
    if not (isinstance(name_a, str) and isinstance(name_b, str) and name_a and name_b):
        raise InvalidInput("Pick two models.")
    if name_a == name_b:
        raise InvalidInput("Pick two different models.")
    found = {m.name: m for m in side_by_side_models().filter(name__in=[name_a, name_b])}
    missing = [name for name in (name_a, name_b) if name not in found]
    if missing:
        raise InvalidInput(f"{missing[0]!r} is not a listed model that can answer now.")
    return found[name_a], found[name_b]


def start_battle(*, prompt: str, voter: Voter, models: tuple[ArenaModel, ArenaModel] | None = None) -> Battle:
    """A new battle on `prompt`, answered in the background.

    Without `models` the pair is drawn from the pool and the battle is anonymous; with
    them (side-by-side mode) the names are shown from the start and the vote never
    counts. Raises InvalidInput for a bad prompt, TooManyBattles past the voter's limits
    (battles/limits.py), ArenaClosed when the pool is too small; nothing is stored then.
    """
    prompt = clean_prompt(prompt)
    _within_limits(voter)
    anony = models is None
    if anony:
        try:
            models = sample_pair()
        except NotEnoughModels as exc:
            raise ArenaClosed("The arena is not open right now: too few models can answer. Try again later.") from exc
    model_a, model_b = models
    now = clock.now()
    with transaction.atomic():
        battle = Battle.objects.create(
            question_id=uuid.uuid4().hex,
            model_a=model_a,
            model_b=model_b,
            anony=anony,
            judge=voter.judge,
            address=voter.address,
            turn=1,
            prompt_chars=len(prompt),
            conversation_a=_asked([], prompt),
            conversation_b=_asked([], prompt),
            status=Battle.Status.ANSWERING,
            state_a=Battle.AnswerState.ANSWERING,
            state_b=Battle.AnswerState.ANSWERING,
            turn_started_at=now,
            created_at=now,
        )
        if anony:
            record_served(model_a, model_b, now.date())
        transaction.on_commit(lambda: answering.start(battle.pk))
    # A new battle has no vote: say so, so that reading battle.vote does not ask the database.
    Battle.vote.related.set_cached_value(battle, None)
    return battle


def _asked(conversation: list, prompt: str) -> list:
    # The assistant message is there from the start and grows as the answer arrives.
    return [*conversation, {"role": "user", "content": prompt}, {"role": "assistant", "content": ""}]


# What a request that acts on a battle without showing it reads of the row (a vote, opening its
# stream): not the conversations, parsed from JSON, nor the other columns, each of which Django
# compiles into the query again on every request.
HANDLE_FIELDS = (
    "question_id",
    "judge",
    "source",
    "anony",
    "model_a",
    "model_b",
    "status",
    "turn",
    "attempt",
    "turn_started_at",
)


def battle_of(question_id: str, judge: str | None, *, fields: Sequence[str] | None = None) -> Battle:
    """The voter's battle, or BattleNotFound: another voter's battle is not found either,
    so nobody learns which ids exist.

    `fields`: read only these columns (HANDLE_FIELDS), and not the vote; the others load
    on first use."""
    # get(), not first(): question_id is unique, and an ORDER BY would make Django hash every
    # selected column to compile it. The models are not joined: their names are hidden until
    # the vote, and revealed_names reads them when they are shown.
    found = Battle.objects.select_related("vote") if fields is None else Battle.objects.only(*fields)
    try:
        battle = found.get(question_id=question_id, source=Battle.Source.ARENA)
    except Battle.DoesNotExist:
        battle = None
    if battle is None or judge is None or battle.judge != judge:
        raise BattleNotFound("No such battle.")
    return answering.expire_stuck(battle)


def add_turn(battle: Battle, prompt: str, voter: Voter) -> Battle:
    """Ask both models one more question in the same battle (within the voter's limits)."""
    prompt = clean_prompt(prompt)
    with transaction.atomic():
        # Locked, so a vote and a new turn arriving together cannot both pass their checks.
        battle = Battle.objects.select_for_update().get(pk=battle.pk)
        if Vote.objects.filter(battle=battle).exists():
            raise BattleConflict("This battle has been voted on; start a new round.")
        if battle.status == Battle.Status.ANSWERING:
            raise BattleConflict("Wait until both answers are complete.")
        if battle.status == Battle.Status.FAILED:
            raise BattleConflict("This battle ended because a model could not answer; start a new round.")
        if battle.stopped:
            # A later turn would forget the stop, and the vote must know of it (it is excluded).
            raise BattleConflict("You stopped these answers: vote, regenerate them, or start a new round.")
        if battle.turn >= settings.ARENA_MAX_TURNS:
            raise BattleConflict(
                f"A battle has at most {settings.ARENA_MAX_TURNS} turns; vote, then start a new round."
            )
        _within_limits(voter)
        battle.conversation_a = _asked(battle.conversation_a, prompt)
        battle.conversation_b = _asked(battle.conversation_b, prompt)
        battle.turn += 1
        battle.status = Battle.Status.ANSWERING
        battle.state_a = battle.state_b = Battle.AnswerState.ANSWERING
        battle.turn_started_at = clock.now()
        battle.attempt, battle.stop_requested_at = 1, None
        Battle.objects.filter(pk=battle.pk).update(
            conversation_a=battle.conversation_a,
            conversation_b=battle.conversation_b,
            turn=battle.turn,
            attempt=1,
            stop_requested_at=None,
            status=battle.status,
            state_a=battle.state_a,
            state_b=battle.state_b,
            turn_started_at=battle.turn_started_at,
        )
        transaction.on_commit(lambda: answering.start(battle.pk))
    return battle


def stop_answers(battle: Battle) -> Battle:
    """Stop both answers of the latest turn; what was written is kept, as `stopped`.

    BattleConflict unless the battle is answering. The request is stored on the row (under
    its lock) and signalled on the stream log; the answering sides end at their next piece.
    This waits up to stop_wait_seconds() for them, then closes the turn without them
    (a side still waiting for its model's first token). Returns the battle as it stands then,
    `ready` (or `failed`) in practice. Idempotent while the stop is under way.
    """
    with transaction.atomic():
        locked = Battle.objects.select_for_update().get(pk=battle.pk)
        if Vote.objects.filter(battle=locked).exists():
            raise BattleConflict("This battle has been voted on; there is nothing to stop.")
        if locked.status == Battle.Status.FAILED:
            raise BattleConflict("This battle ended because a model could not answer; there is nothing to stop.")
        if locked.status != Battle.Status.ANSWERING:
            raise BattleConflict("Both answers are already complete; there is nothing to stop.")
        if locked.stop_requested_at is None:
            Battle.objects.filter(pk=locked.pk).update(stop_requested_at=clock.now())
            logger.info(
                "battle %s: the voter stopped turn %s (attempt %s)", locked.question_id, locked.turn, locked.attempt
            )
    round_ = answering.Round(locked.question_id, locked.turn, locked.attempt)
    stream_log.request_stop(*round_)
    deadline = monotonic_time.monotonic() + stop_wait_seconds()
    while monotonic_time.monotonic() < deadline:
        if not Battle.objects.filter(pk=locked.pk, status=Battle.Status.ANSWERING).exists():
            break
        monotonic_time.sleep(0.05)
    else:
        answering.stop_now(locked.pk, round_)
    return _reloaded(locked.pk)


def regenerate(battle: Battle, voter: Voter) -> Battle:
    """Answer the latest turn again on both sides, before the vote; the answers it replaces
    are kept in `Battle.discarded`, and the conversations hold only the new ones.

    Costs what a turn costs: the front door's limits (battles/limits.py, TooManyBattles) and
    two calls of the endpoints' budgets (counted as they end). BattleConflict after the vote,
    after a failure, while answering, or past MAX_REGENERATIONS for the turn.
    """
    with transaction.atomic():
        # Locked, so a vote and a regenerate arriving together cannot both pass their checks.
        locked = Battle.objects.select_for_update().get(pk=battle.pk)
        if Vote.objects.filter(battle=locked).exists():
            raise BattleConflict("This battle has been voted on; start a new round.")
        if locked.status == Battle.Status.ANSWERING:
            raise BattleConflict("Wait until both answers are complete, or stop them, before regenerating.")
        if locked.status == Battle.Status.FAILED:
            raise BattleConflict("This battle ended because a model could not answer; start a new round.")
        if locked.attempt > MAX_REGENERATIONS:
            raise BattleConflict(
                f"These answers were regenerated {MAX_REGENERATIONS} times, the most allowed; "
                "vote, or start a new round."
            )
        _within_limits(voter)
        now = clock.now()
        discarded = [
            *locked.discarded,
            {
                "turn": locked.turn,
                "attempt": locked.attempt,
                "answer_a": locked.conversation_a[-1]["content"],
                "answer_b": locked.conversation_b[-1]["content"],
                "state_a": locked.state_a,
                "state_b": locked.state_b,
                "discarded_at": now.isoformat(),
            },
        ]
        conversation_a = [*locked.conversation_a[:-1], {"role": "assistant", "content": ""}]
        conversation_b = [*locked.conversation_b[:-1], {"role": "assistant", "content": ""}]
        Battle.objects.filter(pk=locked.pk).update(
            discarded=discarded,
            conversation_a=conversation_a,
            conversation_b=conversation_b,
            attempt=locked.attempt + 1,
            status=Battle.Status.ANSWERING,
            state_a=Battle.AnswerState.ANSWERING,
            state_b=Battle.AnswerState.ANSWERING,
            failure="",
            stop_requested_at=None,
            turn_started_at=now,
        )
        logger.info(
            "battle %s: the voter regenerated turn %s (attempt %s)", locked.question_id, locked.turn, locked.attempt + 1
        )
        transaction.on_commit(lambda: answering.start(locked.pk))
    return _reloaded(locked.pk)


def _reloaded(pk: int) -> Battle:
    return Battle.objects.select_related("vote").get(pk=pk)


def cast_vote(battle: Battle, winner: object, voter: Voter) -> tuple[Vote, bool]:
    """Store the voter's one vote on the battle: (vote, created).

    The same vote again answers the stored one (created False), so a retried request is
    harmless; a different second vote, or a vote while answers are still arriving, is a
    BattleConflict. A vote on a battle that ended with a failed answer is stored but
    excluded (`error`), like every vote that must not count. The voter's client address and
    networks (battles/voters.py `voter_for`) are counted against their daily caps.
    """
    if winner not in Winner.values:
        raise InvalidInput(f"The vote must be one of {', '.join(repr(w) for w in Winner.values)}.")
    try:
        with transaction.atomic():
            # The vote, if any, in the same query; only the battle's row is locked (PostgreSQL
            # cannot lock the missing side of an outer join).
            locked = Battle.objects.select_for_update(of=("self",)).select_related("vote").get(pk=battle.pk)
            existing = getattr(locked, "vote", None)  # a missing reverse one-to-one raises AttributeError
            if existing is not None:
                return _same_vote(existing, winner), False
            if locked.status == Battle.Status.ANSWERING:
                raise BattleConflict("Wait until both answers are complete before voting.")
            _lock_daily_counts(voter)
            vote = Vote.objects.create(
                battle=locked,
                model_a_id=locked.model_a_id,
                model_b_id=locked.model_b_id,
                anony=locked.anony,
                winner=winner,
                judge=voter.judge,
                network=voter.network,
                address="" if voter.signed_in else voter.address,
                wide_network=voter.wide_network,
                excluded_reason=exclusion_reason(locked, voter),
                created_at=clock.now(),
            )
    except IntegrityError:
        # Only reachable where the row lock is not enforced: the other vote won the race.
        return _same_vote(Vote.objects.get(battle_id=battle.pk), winner), False
    return vote, True


def _same_vote(existing: Vote, winner: str) -> Vote:
    if existing.winner != winner:
        raise BattleConflict(f"This battle already has a vote ({existing.winner!r}); a battle takes one vote.")
    return existing


def exclusion_reason(battle: Battle, voter: Voter) -> str:
    """Why this vote must not count, or "" when it counts. The first reason found wins."""
    if reason := Battle.answers_exclusion(battle.status, battle.state_a, battle.state_b):
        # `error` (a model failed, or was cut) before `stopped` (the voter cut it).
        return reason
    if revealed_term(_texts(battle), identity_terms()):
        return ExclusionReason.IDENTITY_REVEALED
    if identity_probe(_prompts(battle)):
        return ExclusionReason.IDENTITY_PROBE
    if battle.openai_moderation and battle.openai_moderation.get("flagged"):
        return ExclusionReason.MODERATION
    # A banned voter: the session or account, or (anonymous votes) the client address whose
    # short sessions were tested together (battles/anomaly_detection.py).
    banned = [voter.judge] + ([ADDRESS_VOTER + voter.address] if voter.address and not voter.signed_in else [])
    if FlaggedVoter.objects.filter(judge__in=banned, state=FlaggedVoter.State.BANNED).exists():
        return ExclusionReason.FLAGGED_USER
    if over_daily_limit(voter) or network_over_daily_limit(voter):
        return ExclusionReason.RATE_LIMITED
    return ""


def _prompts(battle: Battle) -> list[str]:
    return [m["content"] for m in battle.conversation_a if m["role"] == "user"]


def _texts(battle: Battle) -> list[str]:
    # The prompts (the same on both sides) once, then both sides' answers.
    return [m["content"] for m in battle.conversation_a if m["role"] == "user"] + [
        m["content"]
        for conv in (battle.conversation_a, battle.conversation_b)
        for m in conv
        if m["role"] == "assistant"
    ]


def identity_terms() -> frozenset[str]:
    """The words that give a model away: the identity terms staff approved (battles/identity_terms.py),
    never a name by itself, since whoever chooses a name could choose a common word."""
    return approved_terms()


def _used_up(limit: int, now: datetime | None, **who: str) -> bool:
    """Whether the votes of today (UTC day) matching `who` have reached `limit` (0: no limit)."""
    if not limit or not all(who.values()):
        return False
    return Vote.objects.filter(**who, created_at__gte=_day_start(now)).count() >= limit


def over_daily_limit(voter: Voter, now: datetime | None = None) -> bool:
    """Whether the voter has used up today's votes; the vote being cast is the next one. A
    signed-in voter is counted per account; an anonymous one per session and per client
    address, which every fresh cookie jar at that address shares."""
    if voter.signed_in:
        return _used_up(settings.ARENA_ACCOUNT_DAILY_VOTES, now, judge=voter.judge)
    return _used_up(settings.ARENA_VOTER_DAILY_VOTES, now, judge=voter.judge) or _used_up(
        settings.ARENA_ADDRESS_DAILY_VOTES, now, address=voter.address
    )


def network_over_daily_limit(voter: Voter, now: datetime | None = None) -> bool:
    """Whether the voter's network (/24 or /48), or on IPv6 its /32, has used up today's votes.
    Many voters share a network (an office, a campus, a mobile carrier's NAT), so these caps
    are far above the per-voter one: they stop one machine posing as many voters."""
    return _used_up(settings.ARENA_NETWORK_DAILY_VOTES, now, network=voter.network) or _used_up(
        settings.ARENA_WIDE_NETWORK_DAILY_VOTES, now, wide_network=voter.wide_network
    )


def _day_start(now: datetime | None) -> datetime:
    now = now or clock.now()
    return datetime.combine(now.date(), time.min, tzinfo=now.tzinfo)


# Namespaces of the advisory locks taken while a vote is counted against the caps.
_JUDGE_LOCK, _NETWORK_LOCK, _ADDRESS_LOCK, _WIDE_NETWORK_LOCK = 7001, 7002, 7003, 7004


def _lock_daily_counts(voter: Voter) -> None:
    """Serialise the votes of one voter, address and network while each is counted and stored.

    Without it two votes of the same voter on two battles (two tabs, or a script) would
    both count the day's votes before either is stored, and both pass the cap. The battle
    row lock does not help, since the battles differ. PostgreSQL: transaction-scoped
    advisory locks, always taken in the same order (battle, voter, address, network, wide
    network), so two votes cannot wait on each other. SQLite has one writer at a time and
    needs none.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [_JUDGE_LOCK, voter.judge])
        for namespace, ident in (
            (_ADDRESS_LOCK, voter.address),
            (_NETWORK_LOCK, voter.network),
            (_WIDE_NETWORK_LOCK, voter.wide_network),
        ):
            if ident:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [namespace, ident])


def revealed_names(battle: Battle) -> tuple[str, str]:
    """The names shown after the vote: a model that has never been listed by its codename only.

    Models the battle already holds are used as they are; the others are read in one query
    of the three columns a name needs, rather than two full rows.
    """
    names = {
        model.pk: model.display_name
        for field in (Battle.model_a.field, Battle.model_b.field)
        if (model := field.get_cached_value(battle, None)) is not None
    }
    missing = {battle.model_a_id, battle.model_b_id} - names.keys()
    if missing:
        found = ArenaModel.objects.filter(pk__in=missing).only("name", "codename", "listed_at").order_by()
        names.update((model.pk, model.display_name) for model in found)
    return names[battle.model_a_id], names[battle.model_b_id]


def battle_share(battle: Battle) -> Battle:
    """Give the voter's voted battle a public link (a new unguessable token); sharing a shared
    battle again keeps its link. BattleConflict before the vote: the names are part of what is
    shown, and only a finished battle is shared."""
    with transaction.atomic():
        locked = Battle.objects.select_for_update().get(pk=battle.pk)
        if not Vote.objects.filter(battle=locked).exists():
            raise BattleConflict("Only a battle you have voted on can be shared.")
        if locked.share_token is None:
            locked.share_token, locked.shared_at = secrets.token_urlsafe(24), clock.now()
            Battle.objects.filter(pk=locked.pk).update(share_token=locked.share_token, shared_at=locked.shared_at)
            logger.info("battle %s: shared by its voter", locked.question_id)
    return _reloaded(locked.pk)


def battle_unshare(battle: Battle) -> Battle:
    """Revoke the battle's public link: the token is forgotten, so the old link is dead for
    good (sharing again makes a new one). Idempotent."""
    with transaction.atomic():
        locked = Battle.objects.select_for_update().get(pk=battle.pk)
        if locked.share_token is not None:
            Battle.objects.filter(pk=locked.pk).update(share_token=None, shared_at=None)
            logger.info("battle %s: its voter revoked the public link", locked.question_id)
    return _reloaded(locked.pk)


def shared_battle(token: str) -> Battle:
    """The battle shared under `token`, or BattleNotFound (unknown, revoked, or not voted)."""
    if not token:
        raise BattleNotFound("No such battle.")
    try:
        return Battle.objects.select_related("vote").get(share_token=token, vote__isnull=False)
    except Battle.DoesNotExist:
        raise BattleNotFound("No such battle.") from None


def battle_history(judge: str | None, limit: int = 50) -> Sequence[Battle]:
    """The voter's own battles, newest first (none for a visitor who has no judge yet)."""
    if judge is None:
        return []
    return list(
        Battle.objects.filter(judge=judge, source=Battle.Source.ARENA)
        .select_related("vote")
        .defer("discarded", "openai_moderation", "toxic_chat_tag")
        .order_by("-created_at", "-pk")[:limit]
    )


def recent_battles(judge: str, limit: int = 10) -> Sequence[Battle]:
    return list(
        Battle.objects.filter(Q(judge=judge), source=Battle.Source.ARENA)
        .select_related("model_a", "model_b", "vote")
        .order_by("-created_at")[:limit]
    )
