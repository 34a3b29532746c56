"""Demo data: an arena a month after it opened, replayed in time order through the services.

The arena opened with two models rated by the public data it started from (imported as
listed: a battle never pairs two codenamed models, so the first newcomers needed public
models to meet). Three providers, each with its own member, then register models; staff
admit, list and reject them; a provider withdraws one and retires another; the scheduler
carries out a listing after its heads-up day. Every lifecycle change goes through
providers.lifecycle (transition(), or import_listed() for the two founding models), by the
provider's member for provider actions and by staff for staff actions, with the clock
(arenasite.clock) set to the moment it happened, so the log, the dates on the models and
the public pages agree.

Between those moments battles are drawn by the arena's own sampler from the pool as it
stood, their served counts recorded per day, the expected shares snapshotted every six
hours, and a rating run made about weekly and before each listing decision (listing reads
the votes the latest run counted). Voters follow hidden model strengths (Bradley-Terry,
with ties) and vote as people do: most a few times, a few a great deal. So the leaderboard
comes out in the order of the strengths, the transparency page's served and predicted
shares have a month of data, and the anomalous-voter test flags about as many honest
voters as docs/integrity.md says.

Idempotent: a second run finds the demo models and adds nothing.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from arenasite import clock
from battles.arena_pool import load_pool, record_served
from battles.models import Battle, BattleStyle, Vote, Winner
from battles.sampling import NotEnoughModels
from battles.style import conversation_prompt_hash
from battles.voters import judge_id
from leaderboard import services as ratings_services
from leaderboard import tasks as ratings_tasks
from providers import access, lifecycle
from providers.lifecycle import Action
from providers.models import ArenaModel, Membership, Provider
from transparency.services import snapshot_expected_shares

STAFF_EMAIL, STAFF_PASSWORD = "staff@arenasite.example", "arena-staff-demo"
PROVIDER_EMAIL, PROVIDER_PASSWORD = "provider@openlab.example", "arena-provider-demo"

# slug: (name, website, the member who acts for it). Only Open Lab's member has a password
# (the provider login printed by `make run`); the others act in the history only.
PROVIDERS = {
    "open-lab": ("Open Lab", "https://openlab.example", PROVIDER_EMAIL),
    "acme-ai": ("Acme AI", "https://acme.example", "provider@acme.example"),
    "stealth-labs": ("Stealth Labs", "https://stealth.example", "provider@stealth.example"),
}

# How long ago the arena opened; the history runs from then to now.
DAYS = 30

A = ArenaModel.AccessKind


@dataclass(frozen=True)
class DemoModel:
    name: str
    provider: str
    access: str
    licence: str
    strength: float  # hidden, on the Elo scale: what the votes follow
    # (day, hour, step): "create" makes the draft, "import" lists it as the arena opens; the
    # rest are lifecycle actions.
    steps: tuple[tuple[int, int, str], ...]
    heads_up: bool = False


MODELS = [
    # The arena opened with two models its founding data already rated: imported as listed
    # (the one way in that is not an admission), so the first codenamed newcomers had
    # public models to meet; a battle never pairs two codenames.
    DemoModel("open-lab-7b-chat", "open-lab", A.OPEN_WEIGHTS, "Apache-2.0", 930, ((0, 0, "import"),)),
    DemoModel(
        "acme-gpt-legacy",
        "acme-ai",
        A.PUBLIC_API,
        "Proprietary",
        1040,
        ((0, 0, "import"), (22, 10, "request-retirement")),
    ),
    DemoModel(
        "open-lab-13b-chat",
        "open-lab",
        A.OPEN_WEIGHTS,
        "Apache-2.0",
        1010,
        ((4, 14, "create"), (5, 10, "submit"), (6, 11, "admit"), (13, 10, "publish")),
    ),
    DemoModel(
        "acme-gpt-large",
        "acme-ai",
        A.PUBLIC_API,
        "Proprietary",
        1120,
        ((7, 16, "create"), (8, 9, "submit"), (9, 10, "admit"), (20, 11, "publish")),
        heads_up=True,
    ),
    DemoModel(
        "acme-gpt-experimental",
        "acme-ai",
        A.PUBLIC_API,
        "Proprietary",
        990,
        ((11, 13, "create"), (12, 9, "submit"), (13, 14, "admit"), (19, 17, "withdraw")),
    ),
    DemoModel(
        "stealth-zero",
        "stealth-labs",
        A.PRIVATE,
        "",
        1000,
        ((14, 20, "create"), (15, 8, "submit"), (16, 15, "reject")),
    ),
    DemoModel(
        "open-lab-70b-preview",
        "open-lab",
        A.OPEN_WEIGHTS,
        "Apache-2.0",
        1100,
        ((20, 12, "create"), (21, 9, "submit"), (22, 10, "admit")),
    ),
    DemoModel(
        "acme-gpt-mini",
        "acme-ai",
        A.PUBLIC_API,
        "Proprietary",
        960,
        ((24, 15, "create"), (25, 9, "submit"), (25, 16, "admit")),
    ),
    DemoModel("stealth-one", "stealth-labs", A.PRIVATE, "", 1000, ((26, 18, "create"), (27, 10, "submit"))),
    DemoModel(
        "acme-assistant", "acme-ai", A.PUBLIC_SERVICE, "Proprietary", 1000, ((27, 9, "create"), (28, 9, "submit"))
    ),
    DemoModel("open-lab-3b-draft", "open-lab", A.OPEN_WEIGHTS, "Apache-2.0", 1000, ((29, 11, "create"),)),
]

REASONS = {
    Action.ADMIT: "Reachable by third parties; admitted to the blind test.",
    Action.PUBLISH: "Enough counted votes to rate it; listed.",
    Action.REJECT: "Private model: only models third parties can reach may be admitted.",
    Action.WITHDRAW: "We are pulling this checkpoint out of initial rating to retrain it.",
    Action.REQUEST_RETIREMENT: "Superseded by acme-gpt-large.",
}
IMPORT_REASON = "Listed when the arena opened, rated by the public arena data it started from."

# Rating runs, as the hourly task would make them: a few keep the replay quick, and one comes
# before each listing decision (listing reads the votes the latest run counted).
RUN_DAYS, RUN_HOUR = (6, 13, 20, 26), 5
# The history's runs are point estimates; the last one (made now) has the full bootstrap.
HISTORY_BOOTSTRAP = 0
SNAPSHOT_HOURS = (0, 6, 12, 18)

# Battles a day: the arena grows over the month, with quieter weekends.
FIRST_DAY_BATTLES, LAST_DAY_BATTLES = 240, 340
UNVOTED_SHARE = 0.08  # battles the voter left without voting
TIE_SHARE, BOTHBAD_SHARE_OF_TIES = 0.24, 0.35

# Voters: a few vote a great deal, most a handful of times (Zipf-like activity), as on a
# public arena. Votes follow the models' strengths; nobody here votes against them.
VOTERS, ACTIVITY_EXPONENT = 3000, 1.1


@contextmanager
def clock_at(moment: datetime) -> Iterator[None]:
    """Every clock.now() (the services' only clock) answers `moment` inside the block."""
    real = clock.now
    clock.now = lambda: moment
    try:
        yield
    finally:
        clock.now = real


class Command(BaseCommand):
    help = "Load a month of demo arena history: providers, models, users, battles, votes and ratings (idempotent)."

    @transaction.atomic
    def handle(self, *args, **options):
        staff, members = _users()
        added = battles = 0
        if not ArenaModel.objects.filter(is_demo=True, name__in=[m.name for m in MODELS]).exists():
            history = History(staff=staff, members=members, now=clock.now())
            history.replay()
            added, battles = len(MODELS), history.battles
            # The run users see is made now, as the hourly task makes it: the anomalous-voter
            # test first, then every category with its bootstrap.
            transaction.on_commit(ratings_tasks.recompute_ratings)
        self.stdout.write(f"Demo data ready ({added} model(s), {battles} battle(s) added).")
        self.stdout.write(f"  staff login:    {STAFF_EMAIL} / {STAFF_PASSWORD}")
        self.stdout.write(f"  provider login: {PROVIDER_EMAIL} / {PROVIDER_PASSWORD} (Open Lab)")


def _users():
    User = get_user_model()
    staff, created = User.objects.get_or_create(
        username=STAFF_EMAIL, defaults={"email": STAFF_EMAIL, "is_staff": True, "is_superuser": True}
    )
    if created:
        staff.set_password(STAFF_PASSWORD)
        staff.save()
    members = {}
    for slug, (name, website, email) in PROVIDERS.items():
        provider, _ = Provider.objects.get_or_create(
            slug=slug, defaults={"name": name, "website": website, "contact_email": f"arena@{slug}.example"}
        )
        member, created = User.objects.get_or_create(username=email, defaults={"email": email})
        if created:
            if email == PROVIDER_EMAIL:
                member.set_password(PROVIDER_PASSWORD)
            else:
                member.set_unusable_password()
            member.save()
        Membership.objects.get_or_create(provider=provider, user=member, defaults={"role": Membership.Role.ADMIN})
        members[slug] = member
    for user in (staff, members["open-lab"]):
        # The demo logins work at once: their addresses count as confirmed (sign-in asks
        # for a confirmed address, settings.ACCOUNT_EMAIL_VERIFICATION).
        EmailAddress.objects.get_or_create(user=user, email=user.email, defaults={"verified": True, "primary": True})
    return staff, members


class History:
    """The month replayed in time order: lifecycle steps, snapshots, rating runs, and the
    battles served between them from the pool as it stood."""

    def __init__(self, *, staff, members, now: datetime):
        self.staff, self.members, self.now = staff, members, now
        self.opened = (now - timedelta(days=DAYS)).replace(hour=0, minute=0, second=0, microsecond=0)
        self.rng = random.Random(20240501)
        self.models: dict[str, ArenaModel] = {}
        self.strength = {m.name: m.strength for m in MODELS}
        self.pending: list[tuple[Battle, tuple | None]] = []
        self.battles = 0
        weights = [1 / (rank + 1) ** ACTIVITY_EXPONENT for rank in range(VOTERS)]
        self.voter_weights = list(_cumulative(weights))
        self.judges: dict[int, str] = {}

    def at(self, day: int, hour: int, minute: int = 0) -> datetime:
        return self.opened + timedelta(days=day, hours=hour, minutes=minute)

    def moments(self) -> list[tuple[datetime, int, str, object]]:
        """Everything that happens, in order (the number orders things at the same moment)."""
        moments = []
        for model in MODELS:
            for day, hour, step in model.steps:
                minute = self.rng.randrange(60)
                moments.append((self.at(day, hour, minute), 1, step, model))
        for day in range(DAYS + 1):
            for hour in SNAPSHOT_HOURS:
                moments.append((self.at(day, hour), 0, "snapshot", None))
            if day in RUN_DAYS:
                moments.append((self.at(day, RUN_HOUR), 2, "run", None))
        return sorted((m for m in moments if m[0] <= self.now), key=lambda m: (m[0], m[1]))

    def replay(self) -> None:
        served_from = self.opened
        for when, _order, step, model in self.moments():
            self.serve(served_from, when)
            served_from = max(served_from, when)
            self.flush()
            with clock_at(when):
                self.happen(when, step, model)
        self.serve(served_from, self.now)
        self.flush()

    def happen(self, when: datetime, step: str, model: DemoModel | None) -> None:
        if step == "snapshot":
            # The beat carries out what was scheduled (a listing after its heads-up day, a
            # retirement at the end of the listing window), and records the expected shares.
            lifecycle.carry_out_due(when)
            snapshot_expected_shares(when)
        elif step == "run":
            ratings_services.recompute(bootstrap_rounds=HISTORY_BOOTSTRAP)
        elif step == "import":
            provider = Provider.objects.get(slug=model.provider)
            imported = lifecycle.import_listed(provider=provider, name=model.name, listed_at=when, reason=IMPORT_REASON)
            # What an import cannot know (it comes from battle data): staff fill the catalogue
            # in admin; the demo backend answers for it.
            ArenaModel.objects.filter(pk=imported.pk).update(
                access_kind=model.access,
                licence=model.licence,
                description=f"Demo model from {provider.name}.",
                is_demo=True,
            )
            self.models[model.name] = ArenaModel.objects.get(pk=imported.pk)
        elif step == "create":
            provider = Provider.objects.get(slug=model.provider)
            self.models[model.name] = ArenaModel.objects.create(
                provider=provider,
                name=model.name,
                access_kind=model.access,
                licence=model.licence,
                description=f"Demo model from {provider.name}.",
                is_demo=True,
                heads_up_requested=model.heads_up,
                status_changed_at=when,
                created_at=when,
            )
        else:
            arena_model = self.models[model.name]
            actor = self.members[model.provider] if step in lifecycle.PROVIDER_ACTIONS else self.staff
            # The demo follows the rules it shows: the member may act only for its own provider.
            assert access.may_transition(actor, arena_model, step), (actor, model.name, step)
            outcome = lifecycle.transition(
                model_id=arena_model.pk, action=step, actor=actor, reason=REASONS.get(step, "")
            )
            self.models[model.name] = outcome.model

    def serve(self, start: datetime, end: datetime) -> None:
        """The battles of [start, end), drawn from the pool as it stands at `start`."""
        if end <= start:
            return
        with clock_at(start):
            pool = load_pool()
        day = (start - self.opened).days
        per_day = FIRST_DAY_BATTLES + (LAST_DAY_BATTLES - FIRST_DAY_BATTLES) * day / DAYS
        if start.weekday() >= 5:
            per_day *= 0.8
        expected = per_day * (end - start).total_seconds() / 86400
        count = max(0, round(self.rng.gauss(expected, math.sqrt(expected))))
        for _ in range(count):
            try:
                a, b = pool.draw(self.rng)
            except NotEnoughModels:
                return
            when = start + (end - start) * self.rng.random()
            self.pending.append(self.battle(a, b, when))

    def battle(self, a: ArenaModel, b: ArenaModel, when: datetime) -> tuple[Battle, tuple | None]:
        number = self.battles + len(self.pending)
        question_id = f"demo-{number:06d}"
        voter = self.rng.choices(range(VOTERS), cum_weights=self.voter_weights)[0]
        judge = self.judges.setdefault(voter, judge_id(f"demo-voter-{voter}"))
        language, turns = _prompt(self.rng)
        battle = Battle(
            question_id=question_id,
            model_a=a,
            model_b=b,
            language=language,
            turn=len(turns),
            prompt_chars=len(turns[0]),
            conversation_a=_conversation(a.name, turns, self.rng),
            conversation_b=_conversation(b.name, turns, self.rng),
            in_release_pool=Battle.pool_for(question_id),
            judge=judge,
            turn_started_at=when,
            created_at=when,
        )
        battle.prompt_hash = conversation_prompt_hash(battle.conversation_a)
        if self.rng.random() < UNVOTED_SHARE:
            return battle, None
        return battle, (self.winner(a.name, b.name), judge, when + timedelta(seconds=self.rng.randint(20, 400)))

    def winner(self, a: str, b: str) -> str:
        """Bradley-Terry on the hidden strengths (scale 400, base 10), with ties."""
        roll = self.rng.random()
        if roll < TIE_SHARE:
            return Winner.TIE_BOTHBAD if roll < TIE_SHARE * BOTHBAD_SHARE_OF_TIES else Winner.TIE
        expected = 1 / (1 + 10 ** ((self.strength[b] - self.strength[a]) / 400))
        return Winner.MODEL_A if self.rng.random() < expected else Winner.MODEL_B

    def flush(self) -> None:
        if not self.pending:
            return
        battles = [battle for battle, _ in self.pending]
        Battle.objects.bulk_create(battles, batch_size=1000)
        BattleStyle.store(battles, inserted=True)
        Vote.objects.bulk_create(
            [
                Vote(battle=battle, model_a=battle.model_a, model_b=battle.model_b, winner=w, judge=j, created_at=t)
                for battle, vote in self.pending
                if vote is not None
                for w, j, t in (vote,)
            ],
            batch_size=1000,
        )
        for battle in battles:
            record_served(battle.model_a, battle.model_b, battle.created_at.date())
        self.battles += len(battles)
        self.pending = []


def _cumulative(weights: list[float]) -> Iterator[float]:
    total = 0.0
    for weight in weights:
        total += weight
        yield total


PROMPTS = {
    "English": [
        "Explain how a hash table works.",
        "Write a haiku about the sea.",
        "What is the difference between a list and a tuple in Python?",
        "Plan a three-day trip to Lisbon.",
        "Summarise the causes of the French Revolution.",
        "How do I make sourdough bread?",
        "Give me three ideas for a birthday present for a ten-year-old.",
        "Why is the sky blue?",
        "Write a SQL query that finds the second highest salary in each department.",
        "What should I check before signing a flat rental contract?",
    ],
    "Chinese": ["解释一下哈希表是如何工作的。", "写一首关于大海的短诗。", "如何学习一门新的编程语言？"],
    "Spanish": ["¿Cómo funciona una tabla hash?", "Escribe un poema corto sobre el mar."],
}
LONG_CONTEXT = (
    "Here is the function I am working on, with the error it raises and what I already tried. "
    "The service reads orders from a queue, groups them by customer and writes a daily summary; "
    "since the last deploy the summary is sometimes missing the last hour of orders. "
)
WORDS = [f"word{n}" for n in range(1, 501)]
FOLLOW_UPS = ["Can you make it shorter?", "Now explain it to a ten-year-old.", "Give an example."]


def _prompt(rng: random.Random) -> tuple[str, list[str]]:
    """A language and the voter's turns: mostly English, some Chinese and Spanish; some long
    prompts and some conversations of two turns, so every category has votes."""
    roll = rng.random()
    language = "Chinese" if roll < 0.14 else "Spanish" if roll < 0.18 else "English"
    prompt = rng.choice(PROMPTS[language])
    if language == "English" and rng.random() < 0.18:
        prompt = LONG_CONTEXT * rng.randint(3, 6) + prompt
    turns = [prompt]
    if rng.random() < 0.14:
        turns.append(rng.choice(FOLLOW_UPS))
    return language, turns


def _conversation(model: str, turns: list[str], rng: random.Random) -> list[dict]:
    """Stand-in answers; some models write longer and with more markdown, as real ones do."""
    messages = []
    for turn in turns:
        verbose = rng.random() < (0.8 if model.startswith("acme") else 0.2)
        lines = [f"Here is my answer to: {turn[:80]}"]
        if verbose:
            lines += ["", "## Overview", ""] + [f"- **Point {k + 1}**: detail {rng.randint(1, 99)}" for k in range(4)]
        words = rng.randint(15, 60) * (2 if verbose else 1)
        lines += ["", " ".join(rng.choices(WORDS, k=words))]
        messages += [{"role": "user", "content": turn}, {"role": "assistant", "content": "\n".join(lines)}]
    return messages
