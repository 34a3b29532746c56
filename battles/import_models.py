"""The arena models an import's rows name: found by name, or created through the lifecycle.

A model labelled `anonymous` (as releases and shares label models they do not name) is
not a model of its own: such a row is stored against a stand-in of the "imported"
provider, one for each side (a battle's two models differ), never in battles.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import F

from battles import importing
from battles.importing import ImportFormatError, ImportRow
from providers import lifecycle
from providers.models import ArenaModel, Provider

IMPORTED_PROVIDER = "imported"
# The stand-ins for a model labelled anonymous, one for each side (a battle's two models differ).
UNNAMED_NAMES = {"a": "anonymous (model A)", "b": "anonymous (model B)"}


class ModelResolver:
    """Model names to ids. Names not in the arena become listed models of the "imported"
    provider, through the lifecycle (providers.lifecycle.import_listed), which checks each name
    like any other public name; a refused name refuses the file at its first row."""

    def __init__(self, *, source_name: str):
        self.source_name = source_name
        self.ids: dict[str, int] = {}
        self.unnamed_ids: dict[str, int] = {}  # side ("a", "b") -> the stand-in for `anonymous`
        self.provider: Provider | None = None
        # Models created by this import, and the earliest tstamp seen of each.
        self.created: dict[str, ArenaModel] = {}
        self.earliest: dict[str, datetime] = {}

    def resolve(self, rows: list[ImportRow]) -> dict[str, int]:
        unknown = {row.model_a for row in rows} | {row.model_b for row in rows}
        unknown.difference_update(self.ids)
        unknown.discard(importing.ANONYMOUS)
        if unknown:
            # Names are unique among public models, not among hidden ones of different providers;
            # a public model wins, then the oldest, so the same file always lands on the same model.
            found = ArenaModel.objects.filter(name__in=unknown).order_by(F("listed_at").asc(nulls_last=True), "pk")
            for name, pk in found.values_list("name", "id"):
                self.ids.setdefault(name, pk)
            for name in sorted(unknown.difference(self.ids)):
                self.earliest[name] = min(row.created_at for row in rows if name in (row.model_a, row.model_b))
                self._create(name, first=next(row for row in rows if name in (row.model_a, row.model_b)))
        if self.earliest:
            for row in rows:
                for name in (row.model_a, row.model_b):
                    if name in self.earliest and row.created_at < self.earliest[name]:
                        self.earliest[name] = row.created_at
        return self.ids

    def id_of(self, name: str, side: str) -> int:
        """The model id for `name` on `side` ("a" or "b"): `anonymous` is the side's stand-in."""
        if name != importing.ANONYMOUS:
            return self.ids[name]
        if side not in self.unnamed_ids:
            provider = self._provider()
            name = UNNAMED_NAMES[side]
            model = ArenaModel.objects.filter(provider=provider, name=name).first()
            if model is None:
                # Not a model that enters the arena (no lifecycle, never in battles): a draft,
                # as every model starts, that holds the imported battles whose model the data
                # does not name.
                model = ArenaModel.objects.create(
                    provider=provider,
                    name=name,
                    access_kind=ArenaModel.AccessKind.PUBLIC_API,
                    description=(
                        "Stands for the models imported data labels anonymous. Never in battles; "
                        "its votes are excluded as unnamed_model and never rated."
                    ),
                )
            self.unnamed_ids[side] = model.pk
        return self.unnamed_ids[side]

    def finish(self) -> list[str]:
        """Move listed_at back where a later batch held an earlier battle; return the created names."""
        for name, model in self.created.items():
            lifecycle.backdate_import(model, self.earliest[name])
        return sorted(self.created)

    def _provider(self) -> Provider:
        if self.provider is None:
            self.provider = (
                Provider.objects.filter(slug=IMPORTED_PROVIDER).first()
                or Provider.objects.filter(name=IMPORTED_PROVIDER).first()
                or Provider.objects.create(name=IMPORTED_PROVIDER, slug=IMPORTED_PROVIDER)
            )
        return self.provider

    def _create(self, name: str, *, first: ImportRow) -> None:
        try:
            model = lifecycle.import_listed(
                provider=self._provider(),
                name=name,
                listed_at=self.earliest[name],
                reason=f"Imported with arena data from {self.source_name}",
            )
        except lifecycle.TransitionRefused as exc:
            field_name = "model_a" if first.model_a == name else "model_b"
            raise ImportFormatError(
                f"{field_name} {name!r} cannot be a model's name: {exc.detail}", first.where
            ) from None
        self.ids[name] = model.pk
        self.created[name] = model
