"""Identity terms on the database: proposals, staff decisions, the preview, and re-judging votes.

A vote whose battle names an approved term is excluded as `identity_revealed` when it
arrives (battles/arena.py reads `approved_terms`). Which words are terms is a staff
decision, never a provider's: names, codenames and aliases are proposed here (when a
model is admitted, and on demand from admin), staff approve or refuse each one, and a
common English word is refused whoever asks (battles/identity.py `term_refusal`), since
one would exclude ordinary votes. When the terms change, staff re-judge the votes they
touch, both ways, and each re-judgement is logged in the audit log with its counts.

The matching itself is pure (battles/identity.py). Reads of stored conversations are
narrowed by the database first: a case-insensitive regular expression over the JSON text
that every real match passes, so only candidate battles are read into Python.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast

from arenasite import audit, clock
from arenasite.models import AuditEvent
from providers.models import ArenaModel

from .identity import identity_probe, normalise_term, revealed_term, term_refusal
from .models import Battle, ExclusionReason, FlaggedVoter, IdentityTerm, Vote

logger = logging.getLogger(__name__)

State, Source = IdentityTerm.State, IdentityTerm.Source
IDENTITY_REVEALED = ExclusionReason.IDENTITY_REVEALED
# How far back the admin preview looks.
PREVIEW_DAYS = 30
# Votes per conditional UPDATE of a re-judgement.
UPDATE_BATCH = 1000
# Advisory lock namespace: one re-judgement at a time (battles/arena.py uses 7001-7004).
_REJUDGE_LOCK = 7010


class TermRefused(Exception):
    """A term that cannot be added, approved or refused as asked; nothing was changed."""


def approved_terms() -> frozenset[str]:
    """The terms votes are judged by: those staff approved, and only those."""
    return frozenset(IdentityTerm.objects.filter(state=State.APPROVED).values_list("term", flat=True))


# --- proposals --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    term: str
    source: str
    provider_id: int | None = None
    arena_model_id: int | None = None


def model_proposals(model: ArenaModel) -> list[Proposal]:
    """What could name `model`: its public name, codename, family and endpoint model id (the
    last part of a path such as "org/model-7b"), and its provider's name and slug."""
    provider = model.provider
    candidates = [
        (model.name, Source.MODEL_NAME),
        (model.codename, Source.CODENAME),
        (model.family, Source.FAMILY),
        (model.endpoint_model_id.rsplit("/", 1)[-1], Source.ENDPOINT_MODEL_ID),
    ]
    found = [Proposal(term, source, provider.pk, model.pk) for term, source in candidates if term]
    found += [
        Proposal(provider.name, Source.PROVIDER_NAME, provider.pk),
        Proposal(provider.slug, Source.PROVIDER_SLUG, provider.pk),
    ]
    return found


def pool_proposals() -> list[Proposal]:
    """Proposals for every model in the pool, and the words of ARENA_IDENTITY_WORDS."""
    found: list[Proposal] = []
    for model in ArenaModel.objects.in_pool().select_related("provider").order_by("pk"):
        found += model_proposals(model)
    found += [Proposal(word, Source.SETTING) for word in settings.ARENA_IDENTITY_WORDS]
    return found


def identity_terms_propose(proposals: Iterable[Proposal]) -> int:
    """Record each proposal not yet known as a term; the number recorded.

    A proposal that cannot be a term (a common word, say) is recorded as refused, with the
    reason, so staff see what was refused and why. Idempotent: a known term (whatever its
    state) is left as it is, so a refused term is never proposed again.
    """
    created = 0
    with transaction.atomic():
        for proposal in proposals:
            term = normalise_term(proposal.term)
            if not term:
                continue
            refusal = term_refusal(term)
            _, made = IdentityTerm.objects.get_or_create(
                term=term[: IdentityTerm._meta.get_field("term").max_length],
                defaults={
                    "source": proposal.source,
                    "provider_id": proposal.provider_id,
                    "arena_model_id": proposal.arena_model_id,
                    "state": State.REFUSED if refusal else State.PROPOSED,
                    "note": refusal or "",
                    "decided_at": clock.now() if refusal else None,
                },
            )
            created += made
    return created


def identity_terms_propose_pool() -> int:
    """Propose the names of every model in the pool (and ARENA_IDENTITY_WORDS); idempotent."""
    return identity_terms_propose(pool_proposals())


def on_lifecycle_event_saved(sender, instance, created, raw=False, **kwargs):
    """post_save of providers.LifecycleEvent: a model entering the pool has its names proposed."""
    if raw or not created or instance.to_status not in ArenaModel.POOL_STATUSES or instance.kind == "scheduled":
        return
    model = ArenaModel.objects.select_related("provider").get(pk=instance.arena_model_id)
    identity_terms_propose(model_proposals(model))


def identity_term_add(*, term: str, actor, provider=None, arena_model=None, note: str = "") -> IdentityTerm:
    """A term staff add by hand (an alias), proposed like the others. Raises TermRefused for a
    term that cannot be one or is known already."""
    normalised = normalise_term(term)
    refusal = term_refusal(normalised)
    if refusal:
        raise TermRefused(refusal)
    if IdentityTerm.objects.filter(term=normalised).exists():
        raise TermRefused(f"{normalised!r} is already an identity term.")
    if arena_model is not None and provider is None:
        provider = arena_model.provider
    return IdentityTerm.objects.create(
        term=normalised, source=Source.STAFF, provider=provider, arena_model=arena_model, note=note
    )


# --- decisions --------------------------------------------------------------------------------------


def identity_term_decide(*, term_id: int, approve: bool, actor, note: str = "") -> IdentityTerm:
    """Approve or refuse one term, and log it in the audit log with who decided.

    Raises TermRefused, changing nothing, for approving a term that cannot be one (a common
    word) or for a decision that would not change the state. Votes already judged keep
    their judgement until staff re-judge them (`identity_votes_rejudge`).
    """
    target = State.APPROVED if approve else State.REFUSED
    with transaction.atomic():
        # Locked, so two reviewers cannot both pass the checks below.
        term = IdentityTerm.objects.select_for_update().get(pk=term_id)
        if term.state == target:
            raise TermRefused(f"{term.term!r} is already {term.get_state_display().lower()}.")
        if approve and (refusal := term_refusal(term.term)):
            raise TermRefused(refusal)
        previous = term.state
        term.state, term.decided_by, term.decided_at = target, actor, clock.now()
        if note:
            term.note = note[:500]
        term.save(update_fields=["state", "decided_by", "decided_at", "note"])
        audit.record(
            AuditEvent.Action.IDENTITY_TERM,
            f"identity term {term.term!r} {target}",
            actor=actor,
            subject=term,
            term=term.term,
            state=[previous, target],
            note=note,
        )
    return term


# --- reading the stored conversations ----------------------------------------------------------------


def _database_pattern(term: str) -> str:
    """A PostgreSQL regular expression that finds `term` in a conversation's JSON text, and
    may find more: ASCII letters and digits as they are (the match ignores case), any other
    ASCII character escaped, and a non-ASCII one left to match any character, since the
    database folds case differently from Python's casefold()."""
    return "".join(ch if ch.isascii() and ch.isalnum() else ("\\" + ch if ch.isascii() else ".") for ch in term)


def _naming_any(votes: QuerySet, terms: Iterable[str]) -> QuerySet:
    """The votes whose battle may name one of `terms` (a superset: matches are confirmed in Python)."""
    terms = sorted(terms)
    if not terms:
        return votes.none()
    if connection.vendor != "postgresql":
        return votes
    pattern = "|".join(_database_pattern(term) for term in terms)
    return votes.alias(
        _text_a=Cast("battle__conversation_a", TextField()), _text_b=Cast("battle__conversation_b", TextField())
    ).filter(Q(_text_a__iregex=pattern) | Q(_text_b__iregex=pattern))


_BATTLE_COLUMNS = (
    "pk",
    "judge",
    "excluded_reason",
    "battle__conversation_a",
    "battle__conversation_b",
    "battle__status",
    "battle__state_a",
    "battle__state_b",
    "battle__openai_moderation",
)


def _texts(conversation_a: list, conversation_b: list) -> list[str]:
    """The prompts and both sides' answers, as battles/arena.py judges them."""
    return [str(m.get("content", "")) for m in conversation_a] + [
        str(m.get("content", "")) for m in conversation_b if m.get("role") == "assistant"
    ]


def _failed(status: str, state_a: str, state_b: str) -> bool:
    # Excluded for its answers first (`error`, or `stopped` by the voter), whatever it names.
    return bool(Battle.answers_exclusion(status, state_a, state_b))


def _arena_votes(since: datetime | None) -> QuerySet:
    # Imported battles keep the judgement of the data set they came from.
    votes = Vote.objects.filter(battle__source=Battle.Source.ARENA)
    return votes.filter(created_at__gte=since) if since is not None else votes


# --- preview ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TermPreview:
    term: str
    would_exclude: int  # recent votes whose battle names the term (and whose answers did not fail)
    counting: int  # of those, votes that count today: approving the term would take these out
    recent: int  # every recent vote

    @property
    def share(self) -> float:
        return self.would_exclude / self.recent if self.recent else 0.0


def identity_term_preview(terms: Iterable[str], *, days: int = PREVIEW_DAYS, now=None) -> list[TermPreview]:
    """For each term, how many of the last `days` days' votes it would have excluded on its own.

    A vote counts for a term when the battle's prompts or answers name it (as vote judging
    matches it) and its answers did not fail (those votes are excluded as `error` first).
    Read only: nothing is changed.
    """
    since = (now or clock.now()) - timedelta(days=days)
    votes = _arena_votes(since)
    recent = votes.count()
    previews = []
    for raw in terms:
        term = normalise_term(raw)
        would, counting = 0, 0
        rows = _naming_any(votes, [term]).values_list(*_BATTLE_COLUMNS)
        for _pk, _judge, reason, conv_a, conv_b, status, state_a, state_b, _moderation in rows.iterator(chunk_size=500):
            if _failed(status, state_a, state_b) or not revealed_term(_texts(conv_a, conv_b), [term]):
                continue
            would += 1
            counting += not reason
        previews.append(TermPreview(term=term, would_exclude=would, counting=counting, recent=recent))
    return previews


# --- re-judging ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejudgement:
    terms: list[str] | None  # None: every vote excluded as identity_revealed was read again
    since: datetime | None
    read: int  # candidate votes read
    excluded: int  # counting votes now excluded as identity_revealed
    lifted: int  # identity_revealed exclusions that no longer hold
    counting_again: int  # of the lifted, votes that count again
    other_reasons: dict[str, int]  # of the lifted, votes excluded for another reason instead
    event_id: int


def _reason_without_identity(row: tuple, flagged: set[str]) -> str:
    """The judgement of a vote whose identity exclusion no longer holds: the reasons after
    `identity_revealed` that its stored battle and its voter's standing show (battles/arena.py
    `exclusion_reason` checks them in the same order). A daily cap the vote was over when it
    arrived is not judged again (as when a flagged voter is cleared)."""
    _pk, judge, _reason, conv_a, _conv_b, status, state_a, state_b, moderation = row
    if reason := Battle.answers_exclusion(status, state_a, state_b):
        return reason
    if identity_probe([str(m.get("content", "")) for m in conv_a if m.get("role") == "user"]):
        return ExclusionReason.IDENTITY_PROBE
    if moderation and moderation.get("flagged"):
        return ExclusionReason.MODERATION
    if judge in flagged:
        return ExclusionReason.FLAGGED_USER
    return ""


def identity_votes_rejudge(
    *, terms: Iterable[str] | None, since: datetime | None, actor, reason: str = ""
) -> Rejudgement:
    """Judge votes again by the approved terms of now, both ways, and log it in the audit log.

    Reads the arena's votes cast since `since` (all of them when None) whose battles name
    one of `terms` (every vote excluded as `identity_revealed` when `terms` is None):
    - a vote excluded as `identity_revealed` that no approved term matches any more is
      lifted: it counts again, or takes the next reason its battle or voter shows;
    - a vote that counts and that an approved term (of `terms`) matches is excluded.
    Votes excluded for any other reason keep it, so clearing a voter or a cap is never
    undone here. Each change is a conditional UPDATE (a vote judged otherwise meanwhile is
    left alone), noted by the rating run's triggers, so the next run counts what changed.
    Idempotent: a second run with the same terms changes nothing and logs zero counts.
    """
    selected = None if terms is None else sorted({normalise_term(t) for t in terms if normalise_term(t)})
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, 0)", [_REJUDGE_LOCK])
        approved = approved_terms()
        votes = _arena_votes(since)
        lift = votes.filter(excluded_reason=IDENTITY_REVEALED)
        if selected is not None:
            lift = _naming_any(lift, selected)
        adding = approved if selected is None else approved & set(selected)
        add = _naming_any(votes.filter(excluded_reason=""), adding)
        read, lifted_to, to_exclude = _judge_again(lift, add, approved)
        changed = _lift(lifted_to)
        excluded = _exclude(to_exclude)
        lifted = sum(changed.values())
        other = {str(name): n for name, n in sorted(changed.items()) if name and n}
        scope = "every identity exclusion" if selected is None else ", ".join(repr(t) for t in selected)
        event = audit.record(
            AuditEvent.Action.VOTES_REJUDGED,
            f"votes re-judged by identity terms ({scope[:120]}): {excluded} excluded, {lifted} lifted, "
            f"{changed['']} count again",
            actor=actor,
            terms=selected,
            since=since.isoformat() if since else None,
            read=read,
            excluded=excluded,
            lifted=lifted,
            counting_again=changed[""],
            other_reasons=other,
            reason=reason,
        )
    logger.info("identity re-judgement: %d read, %d excluded, %d lifted", read, excluded, lifted)
    return Rejudgement(
        terms=selected,
        since=since,
        read=read,
        excluded=excluded,
        lifted=lifted,
        counting_again=changed[""],
        other_reasons=other,
        event_id=event.pk,
    )


def _judge_again(
    lift: QuerySet, add: QuerySet, approved: frozenset[str]
) -> tuple[int, dict[str, list[int]], list[int]]:
    """Read the candidate votes and judge each by the `approved` terms: how many were read,
    the votes to lift by the reason each takes instead, and the votes to exclude."""
    flagged = set(FlaggedVoter.objects.filter(state__in=FlaggedVoter.EXCLUDING).values_list("judge", flat=True))
    read = 0
    lifted_to: dict[str, list[int]] = {}
    for row in lift.values_list(*_BATTLE_COLUMNS).iterator(chunk_size=500):
        read += 1
        if not revealed_term(_texts(row[3], row[4]), approved):
            lifted_to.setdefault(_reason_without_identity(row, flagged), []).append(row[0])
    to_exclude = []
    for row in add.values_list(*_BATTLE_COLUMNS).iterator(chunk_size=500):
        read += 1
        if not _failed(row[5], row[6], row[7]) and revealed_term(_texts(row[3], row[4]), approved):
            to_exclude.append(row[0])
    return read, lifted_to, to_exclude


def _lift(lifted_to: dict[str, list[int]]) -> Counter[str]:
    """Give each vote its new reason ("" counts again), only if it is still excluded as
    revealing an identity; how many took each reason."""
    changed: Counter[str] = Counter()
    for new_reason, ids in lifted_to.items():
        for start in range(0, len(ids), UPDATE_BATCH):
            changed[new_reason] += Vote.objects.filter(
                pk__in=ids[start : start + UPDATE_BATCH], excluded_reason=IDENTITY_REVEALED
            ).update(excluded_reason=new_reason)
    return changed


def _exclude(to_exclude: list[int]) -> int:
    """Exclude each vote as revealing an identity, only if it still counts; how many were."""
    excluded = 0
    for start in range(0, len(to_exclude), UPDATE_BATCH):
        excluded += Vote.objects.filter(pk__in=to_exclude[start : start + UPDATE_BATCH], excluded_reason="").update(
            excluded_reason=IDENTITY_REVEALED
        )
    return excluded
