"""Which public names a model may take, decided without revealing other providers' models.

A model's public name stays hidden until it is listed: before that, the arena shows its
codename. So registering a name must not tell a provider whether another provider holds
that name on a model that is not public yet (a draft, a submission, a rejection, a model in
initial rating): answering "taken" for those would let anyone with an account confirm
unannounced names. The rules are:

- A name is unique within its provider (a provider knows its own models), and among public
  models (those listed at some time; their names are public anyway), in any letter case.
  Registering or renaming checks both, and nothing else.
- Two providers may hold the same name on hidden models; the clash is settled when one of
  them is listed: the listing is refused (rule `name_taken`) while another public model
  has the name, and staff rename the model first. A unique index on the lower-cased names
  of public models backs the check against two listings at once.
- Reserved: `anonymous` (how the arena speaks of a model before a vote), anything shaped
  like a codename (adjective-noun-number, as providers.models.new_codename makes them,
  with any separators and letter case), and every codename in use.

Callers: the API's serializer (and through it the portal), the admin's model form, and
providers.lifecycle at listing.
"""

from __future__ import annotations

import re
import unicodedata

from .models import _ADJECTIVES, _NOUNS, ArenaModel, Provider

RESERVED_NAMES = frozenset({"anonymous"})

_CODENAME_SHAPE = re.compile(rf"^({'|'.join(_ADJECTIVES)})-({'|'.join(_NOUNS)})-[0-9]+$")


def normalised(name: str) -> str:
    """The name as the reservation rules compare it: compatibility-folded (full-width letters
    become plain ones), case-folded, and with every run of other characters as one hyphen."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return re.sub(r"[^0-9a-z]+", "-", folded).strip("-")


def reserved_refusal(name: str) -> str | None:
    """Why `name` is reserved for the arena itself, or None."""
    plain = normalised(name)
    if plain in RESERVED_NAMES:
        return f"{name!r} is reserved: the arena calls models that way before a vote reveals them."
    if _CODENAME_SHAPE.match(plain) or ArenaModel.objects.filter(codename__iexact=plain).exists():
        return (
            f"{name!r} looks like a codename (adjective-animal-number), which the arena uses for models "
            "not yet public; choose a name that does not."
        )
    return None


def name_refusal(name: str, *, provider: Provider | None, exclude_pk: int | None = None) -> str | None:
    """Why a model of `provider` may not take the public name `name`, or None.

    Says nothing about other providers' models that are not public: the same answer
    whether such a model holds the name or not. `exclude_pk` is the model being renamed.
    """
    refusal = reserved_refusal(name)
    if refusal:
        return refusal
    others = ArenaModel.objects.filter(name__iexact=name.strip())
    if exclude_pk is not None:
        others = others.exclude(pk=exclude_pk)
    if provider is not None and others.filter(provider=provider).exists():
        return f"{provider.name} already has a model named {name!r}."
    if others.filter(listed_at__isnull=False).exists():
        return f"A public model is already named {name!r}."
    return None


def public_name_clash(model: ArenaModel) -> ArenaModel | None:
    """Another public model with `model`'s name (in any letter case): what refuses its listing."""
    return (
        ArenaModel.objects.filter(name__iexact=model.name, listed_at__isnull=False)
        .exclude(pk=model.pk)
        .select_related("provider")
        .first()
    )
