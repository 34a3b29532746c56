"""The battle pool as stored: which models may be drawn, with which weights and targets,
and the count of battles each was served per day.

The drawing itself is battles/sampling.py; this module reads the models it draws from
and writes what was served. (battles/release_pool.py is the other pool: the battles set aside
for community releases.)
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from django.conf import settings
from django.db import connection
from django.db.models import Q, QuerySet

from providers.models import ArenaModel

from .budgets import exhausted_today
from .models import SamplingShare
from .sampling import Candidate, choose_pair, effective_weight, expected_shares

# Seeded from the operating system on every draw: nobody can predict the next pair from
# pairs they have seen, which matters when voters could steer themselves towards a model.
_SYSTEM_RANDOM = random.SystemRandom()


def sampleable_models() -> QuerySet[ArenaModel]:
    """Models anonymous battles may draw: in the blind test or listed, and able to answer.

    Able to answer means the demo flag (the local demo backend needs no endpoint) or an
    endpoint that is not known to be offline, and a daily budget not used up (an endpoint
    budget that ran out today). Imported history models are listed but have no endpoint,
    so they are never drawn. A model whose endpoint has not been checked yet is drawn: the
    health check runs every few minutes and the first failed call marks it.
    """
    answerable = Q(is_demo=True) | (~Q(endpoint_base_url="") & ~Q(endpoint_model_id=""))
    # A model whose endpoint budget ran out today rests until the day ends (battles/budgets.py).
    return (
        ArenaModel.objects.in_pool().filter(answerable, endpoint_offline_since__isnull=True).exclude(exhausted_today())
    )


def model_weight(model: ArenaModel) -> float:
    """The weight `model` is drawn with, boost included (see sampling.effective_weight)."""
    return effective_weight(
        model.sampling_weight,
        in_initial_rating=model.status == ArenaModel.Status.INITIAL_RATING,
        votes_counted=model.votes_counted,
        boost=settings.ARENA_NEW_MODEL_BOOST,
        boost_votes=settings.ARENA_NEW_MODEL_BOOST_VOTES,
    )


@dataclass(frozen=True)
class ArenaPool:
    """The pool at one moment: the models by id and the candidates the sampler sees."""

    models: dict[int, ArenaModel]
    candidates: list[Candidate[int]]

    def draw(self, rng: random.Random | None = None) -> tuple[ArenaModel, ArenaModel]:
        """(model_a, model_b) for a new anonymous battle. Raises sampling.NotEnoughModels."""
        a, b = choose_pair(self.candidates, rng or _SYSTEM_RANDOM, target_share=settings.ARENA_BATTLE_TARGET_SHARE)
        return self.models[a], self.models[b]

    def expected_shares(self) -> dict[ArenaModel, float]:
        """For each model, the probability that a battle drawn now includes it (they add up to 2)."""
        shares = expected_shares(self.candidates, target_share=settings.ARENA_BATTLE_TARGET_SHARE)
        return {self.models[pk]: share for pk, share in shares.items()}


# What drawing a pair reads of each model (its weight, its name for the codename rule):
# a battle is created from the two drawn models' ids, so the other ~40 columns would be
# read and compiled into the query on every new battle for nothing.
DRAW_FIELDS = ("name", "codename", "listed_at", "status", "sampling_weight", "votes_counted")


def load_pool(*, fields: Sequence[str] | None = None) -> ArenaPool:
    """Read the pool in two queries: the models, then their target links.

    `fields`: read only these columns of the models (the others load on first use).
    """
    found = sampleable_models().order_by("pk")
    if fields is not None:
        found = found.only(*fields)
    models = {m.pk: m for m in found}
    links = ArenaModel.battle_targets.through.objects.filter(from_arenamodel_id__in=models.keys())
    targets: dict[int, set[int]] = {}
    for source, target in links.values_list("from_arenamodel_id", "to_arenamodel_id"):
        targets.setdefault(source, set()).add(target)
    candidates = [
        Candidate(
            key=pk,
            weight=model_weight(model),
            targets=frozenset(targets.get(pk, ())),
            codename=not model.is_public,
        )
        for pk, model in models.items()
    ]
    return ArenaPool(models=models, candidates=candidates)


def sample_pair(rng: random.Random | None = None) -> tuple[ArenaModel, ArenaModel]:
    """Draw the two models of a new anonymous battle from the pool as it is now.

    Raises sampling.NotEnoughModels when fewer than two models can be drawn; the caller
    shows that as "the arena is not open right now" rather than an error.
    """
    return load_pool(fields=DRAW_FIELDS).draw(rng)


def record_served(model_a: ArenaModel, model_b: ArenaModel, day: date) -> None:
    """Count one served battle for both models on `day` (call it when the battle is created).

    One statement, safe under concurrency: a missing row is inserted with a count of 1, an
    existing one counts up in the database (ON CONFLICT DO UPDATE SET battles = battles + 1,
    PostgreSQL and SQLite alike), so two processes serving the same model at once both
    count. The rows are written in model id order, so two transactions serving the same
    pair in opposite sides lock them in the same order and cannot deadlock. Not idempotent:
    each call is one more battle.
    """
    if isinstance(day, datetime) or not isinstance(day, date):
        raise TypeError(f"day must be a date, got {day!r}")
    if model_a.pk == model_b.pk:
        raise ValueError(f"A battle needs two different models; got {model_a} twice.")
    first, second = sorted((model_a.pk, model_b.pk))
    quote = connection.ops.quote_name
    table = quote(SamplingShare._meta.db_table)
    day_column, model_column, count_column = (
        quote(SamplingShare._meta.get_field(name).column) for name in ("day", "arena_model", "battles")
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({day_column}, {model_column}, {count_column}) VALUES (%s, %s, 1), (%s, %s, 1) "
            f"ON CONFLICT ({day_column}, {model_column}) "
            f"DO UPDATE SET {count_column} = {table}.{count_column} + 1",
            [day, first, day, second],
        )
