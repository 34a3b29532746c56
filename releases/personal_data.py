"""Does a battle carry personal data? Pure: its texts in, the first reason found out.

Community data releases (releases/building.py) publish a share of the arena's battles. A
battle whose prompts or answers hold an e-mail address, a phone number, a payment card
number, a public IP address, a street address or an IBAN is left out, and the release
manifest counts it under that reason. Leaving out a clean battle costs one row of a
release; publishing someone's phone number cannot be taken back. So every check leans
towards flagging, and what is let through is only what is known to point at nobody:
reserved example domains, private IP ranges, numbers that fail their checksum or are not
allocated, and the like (each one is said where it is decided: here, or in the modules
named below).

Speed decides the shape of this module. A release of a million battles, about four texts
each, must be built in a minute in all, which leaves this check about 4 µs a text. In
CPython's `re` every place a pattern may start costs an attempt, and a chat answer has
dozens of numbers; trying the shapes of a phone number, an IP address and a street
address at each of them costs 20-100 µs a text. So the texts are first read by RE2
(google-re2, Google's bindings of the library): one `re2.Set` pass over the UTF-8 bytes,
a DFA whatever the number of patterns, says which kinds of candidate a text holds at all
(about 2 µs per 1,000 characters). Most texts hold none and are done. For the others,
RE2 finds the candidates of those kinds, and Python decides each with the libraries that
know the rules: phonenumbers, python-stdnum and ipaddress.

This module is the scan: the candidate patterns, the one pass over a text, and the order
in which reasons outrank each other; and street addresses, which need nothing but their
patterns. What decides each candidate lives by kind: releases/personal_data_email.py
(e-mail addresses, plain, spaced or spelled out) and releases/personal_data_numbers.py
(payment cards, phone numbers, IP addresses, IBANs).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import re2

from .personal_data_email import WIDE_AT, has_email, has_obfuscated_email
from .personal_data_numbers import check_digit_run, check_iban, check_ipv4, check_ipv6

# In priority order: when one text holds several kinds, the earliest listed is reported.
REASONS = ("email", "phone", "payment_card", "ip_address", "street_address", "iban")
_RANK = {reason: rank for rank, reason in enumerate(REASONS)}


def find_personal_data(texts: Iterable[str]) -> str | None:
    """The reason the first text with personal data is left out (one of REASONS), or None.

    Texts are read in the order given (a battle's prompts and answers); within a text the
    reasons rank as REASONS lists them. Deterministic: no state, no randomness."""
    for text in texts:
        if text and isinstance(text, str):
            reason = _reason(text)
            if reason is not None:
                return reason
    return None


def _reason(text: str) -> str | None:
    if ("\uff20" in text or "\ufe6b" in text) and has_email(text.translate(WIDE_AT)):
        return "email"  # "zhang.san＠163.com": a full-width or small "@" (and dots) as ASCII
    if "@" in text and has_email(text):
        return "email"
    encoded = text.encode("utf-8", "replace")
    if not encoded.isascii() and _has_foreign_digits(encoded):
        # Arabic-Indic, Persian, Devanagari and full-width digits, as ASCII (rare: the
        # translation is slow, the search for their UTF-8 lead bytes is not).
        text = text.translate(_FOREIGN_DIGITS)
        encoded = text.encode("utf-8", "replace")
    kinds = _CANDIDATES.Match(encoded)
    if not kinds:
        return None
    best: str | None = None
    for kind in sorted(kinds):
        reason, finder, check = _KINDS[kind]
        if best is not None and _RANK[best] <= _RANK[reason]:
            continue  # nothing this kind finds could outrank what was found
        if check is None:
            if has_obfuscated_email(text):
                return "email"
            continue
        for match in finder.finditer(encoded):
            found = check(encoded, match.start(), match.end())
            if found is not None and (best is None or _RANK[found] < _RANK[best]):
                best = found
                if found == "phone":  # nothing after e-mail ranks higher
                    return best
    return best


# ---------------------------------------------------------------------------------------
# Candidates, as RE2 patterns (RE2 has no look-arounds; what they would decide is decided
# in Python, on the few matches). Each kind is one pattern; all of them together are the
# Set that every text goes through.

# Arabic-Indic and Persian digits (U+0660-0669, U+06F0-06F9), Devanagari digits
# (U+0966-096F) and full-width digits (U+FF10-FF19), found by their UTF-8 lead bytes:
# each pattern starts with a literal, so the search runs at memchr speed.
_FOREIGN_DIGIT_HINTS = (
    (b"\xd9", re.compile(rb"\xd9[\xa0-\xa9]")),
    (b"\xdb", re.compile(rb"\xdb[\xb0-\xb9]")),
    (b"\xe0\xa5", re.compile(rb"\xe0\xa5[\xa6-\xaf]")),
    (b"\xef\xbc", re.compile(rb"\xef\xbc[\x90-\x99]")),
)


def _has_foreign_digits(encoded: bytes) -> bool:
    return any(lead in encoded and pattern.search(encoded) for lead, pattern in _FOREIGN_DIGIT_HINTS)


_FOREIGN_DIGITS = {
    base + offset: ord("0") + offset for base in (0x0660, 0x06F0, 0x0966, 0xFF10) for offset in range(10)
}

# The patterns run in RE2's Latin-1 mode over the UTF-8 bytes: a byte is a character, so
# the DFA stays small and fast (in UTF-8 mode, Unicode classes like \p{Lu} multiply its
# states). Non-ASCII words are written as themselves and match their UTF-8 bytes; a
# non-ASCII letter is "a byte from \x80 up" (_HIGH), a non-ASCII capital "a two-byte
# sequence" (close enough for a candidate; Python decides).
_HIGH = r"[\x80-\xff]"
_CAPITAL = r"(?:[A-Z]|[\xc3-\xd5][\x80-\xbf])"
_LETTER = r"[A-Za-z\x80-\xff]"

# Phone and card numbers: digits apart from separators (space, dash, slash, parentheses,
# a dot not ending a sentence, no-break space), at least nine of them (a national number
# with its area code; a card), or seven after a "+", or 4-4 as Hong Kong and Singapore
# write their eight-digit mobiles. Dates (8 digits) and most quantities are too short.
_SEPARATOR = r"(?:[ \-/()]{1,3}|\.|[ \-/()]{1,2}\.|\.[\-/()]{1,2}|\xc2\xa0)?"
_NUMBER = (
    rf"\+\(?\d(?:{_SEPARATOR}\d){{6,}}"
    rf"|\(?\d(?:{_SEPARATOR}\d){{8,}}"
    r"|[5689]\d{3}[ \-]\d{4}"
)
_IPV4 = r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}"
# IPv6 with eight groups or a "::"; global unicast addresses (2000::/3) start with 2 or 3.
_HEX = "[0-9a-fA-F]{1,4}"
_IPV6 = rf"[23][0-9a-fA-F]{{0,3}}(?:(?::{_HEX}){{0,6}}::(?:{_HEX}(?::{_HEX}){{0,6}})?|(?::{_HEX}){{7}})"
# Two capitals, the check digits, then the account, grouped by fours or not.
_IBAN = r"[A-Z]{2}\d\d(?: ?[0-9A-Z]){10,30}"
# "jane.smith [at] uni-heidelberg [dot] de", "jane(at)example.org"; "jane dot roe at gmail
# dot com" (the word "dot" after "at <word>" is rare enough in chat text to stay cheap).
_OBFUSCATED = (
    r"[A-Za-z0-9._%+\-\x80-\xff] ?[\[(] ?(?:at|AT|At) ?[\])] ?[A-Za-z0-9\x80-\xff]"
    r"|[A-Za-z0-9\x80-\xff] (?:at|AT|At) [A-Za-z0-9\x80-\xff][A-Za-z0-9\-\x80-\xff]*"
    r"(?: (?:dot|DOT|Dot) [A-Za-z0-9\-\x80-\xff]+)* (?:dot|DOT|Dot) [A-Za-z]"
)

# Street addresses. English and other "number, name, type": 221B Baker Street, 1600
# Pennsylvania Avenue NW, 42 Wallaby Way, 350 Fifth Ave, 123 main st. The name is one to
# four capitalised words or ordinals (a lower-case name only before a full street word),
# so "5 ways to cross the road" and "2 hard drives" are not addresses. (Python turns away
# "Dr" and "St" before a capitalised word, a doctor and a saint: "3 Tips From Dr. Oz".)
_EN_TYPES = (
    "Street|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Court|Ct|Place|Pl|Terrace|Way|Circle|Parkway|Pkwy|"
    "Highway|Hwy|Square|Sq|Trail|Crescent|Close|Grove|Gardens|Row|Mews|Alley|Plaza|Loop|Pike|Turnpike|"
    "Expressway|Freeway|Causeway|Quay|Wharf|Embankment|Dr|St|"
    "STREET|AVENUE|AVE|ROAD|RD|BOULEVARD|BLVD|LANE|DRIVE|DR|COURT|PLACE|WAY|HIGHWAY|ST"
)
_HOUSE_NUMBER_FIRST = (
    r"\d{1,6}[A-Za-z]?(?:[-/]\d{1,4}[A-Za-z]?)?,? {1,2}(?:"
    rf"(?:(?:{_CAPITAL}(?:[A-Za-z'.\-]|{_HIGH})*|\d{{1,3}}(?:st|nd|rd|th)) ){{1,4}}(?:{_EN_TYPES})\b"
    r"|[a-z]{3,15} (?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln)\b"
    r"|Broadway\b"
    # French, Belgian, Swiss: 12 rue de la Paix, 5, avenue Anatole France, 14 bis rue des Lilas.
    r"|(?:(?:bis|ter) )?(?:[rR]ue|[aA]venue|[aA]v\.|[bB]oulevard|[bB]d|[pP]lace|[cC]hemin|[aA]ll(?:é|e)e|[iI]mpasse|"
    r"[qQ]uai|[rR]oute|[cC]ours|[sS]quare|[pP]assage|[vV]oie|[eE]splanade|[fF]aubourg|[rR]ond-point) "
    rf"(?:de |du |des |la |le |les |l'|d'|{_CAPITAL})"
    r")"
)
# German, Dutch, Nordic "name+type number": Hauptstraße 5, Berliner Str. 12a, Kalverstraat
# 92, Drottninggatan 3. Short generic types (weg, ring, platz, ...) only at the end of a
# compound word: "Schillerweg 4", not "Platz 2" (second place) or "gate 5".
_HOUSE_NUMBER = r"\d{1,5}[a-zA-Z]?(?:$|[^\d.,]|[.,](?:$|\D))"
_TYPE_FIRST = (
    "Calle|calle|C/|Avenida|avenida|Avda\\.|Av\\.|Paseo|paseo|Plaza|plaza|Carrera|Carrer|carrer|Camino|Rua|rua|"
    "Travessa|Praça|Alameda|Via|via|Viale|viale|Piazza|piazza|Corso|corso|Largo|Vicolo|ul\\.|ulica|Aleja|"
    "ул\\.|улица|улице|улицу|проспект|пр-т|пер\\.|бульвар"
)
_NAME_WORD = r"(?:[^ \n,;:\d()])"
_NUMBER_LAST = (
    r"(?:[Ss]tra(?:ße|sse)|[Ss]tr\.|straat|[Gg]asse|[Aa]llee|gatan|gade|vägen|veien) ?"
    + _HOUSE_NUMBER
    + r"|(?:[a-z]|ä|ö|ü|ß)(?:weg|platz|ring|damm|ufer|steig|laan|gracht|plein|kade|singel|dijk|vej) "
    + _HOUSE_NUMBER
    # Spanish, Italian, Portuguese, Polish, Russian "type name number": Calle Mayor 5, Via
    # Roma 10, Avenida Paulista, 1578, ul. Marszałkowska 10, ул. Тверская, д. 7. The name's
    # last word is capitalised; that keeps out "via email 2 times".
    + rf"|(?:^|[^A-Za-z\x80-\xff])(?:{_TYPE_FIRST}) (?:{_NAME_WORD}+,? ){{0,3}}{_CAPITAL}{_NAME_WORD}*,? "
    + r"(?:(?:д\.|nº|n°|no\.|n\.) ?)?"
    + _HOUSE_NUMBER
    # Korean road names (세종대로 175, ...길 12), post office boxes, Chinese 建国路88号,
    # Japanese 1丁目 / 3番地.
    + r"|(?:대로|길) \d{1,5}(?:$|\D)"
    + r"|(?i:p\.? ?o\.? ?box|postfach|apartado) \d{1,6}"
    + r"|(?:路|街|道|巷|弄)\d{1,4}(?:号|號)"
    + r"|\d{1,3}(?:丁目|番地)"
)

_LATIN1 = re2.Options()
_LATIN1.encoding = re2.Options.Encoding.LATIN1
# The DFA's cache: RE2 falls back to slower matching when it fills; 64 MiB is far more
# than these patterns need on chat text.
_LATIN1.max_mem = 64 << 20


def _re2(pattern: str) -> re2._Regexp:
    # Non-ASCII literals become their UTF-8 bytes, one Latin-1 character each.
    return re2.compile(pattern.encode("utf-8"), _LATIN1)


# ---------------------------------------------------------------------------------------
# Street addresses.
#
# Measured on the labelled sentences of benchmarks/personal_data.py (62 with an address in
# ten languages, 66 without, among them sentences built to trap a pattern: "Top 10 Things
# To Do On Main Street", "5 ways to cross the road", "Route 66", "Er belegte Platz 2"):
#   these patterns:        recall 0.97, precision 0.98 (misses "4059 Mt Lee Dr. Hollywood",
#                          the doctor rule, and "10 Hudson Yards"; flags "7 Avenue Q songs")
#   usaddress 0.5.16 (datamade's CRF parser, maintained; it labels the tokens of a string
#   it assumes is an address, so it ran on every "number + next six words" window and an
#   address was a window tagged AddressNumber + StreetName + street type): recall 0.47,
#   precision 0.69, and English-only
#   pyap 0.3.1 (US/CA/GB regexes, last release 2020): recall 0.06, precision 1.00; it
#   wants city, state and postcode after the street, which chat text rarely has
#   commonregex 1.5.4's street pattern: recall 0.27, precision 0.59
# So patterns of our own (_HOUSE_NUMBER_FIRST and _NUMBER_LAST above), which know the
# street types of the arena's main languages.


_DOCTOR_OR_SAINT = re.compile(rb"\.? [A-Z]")


def _street(encoded: bytes, start: int, end: int) -> str | None:
    if start > 1 and encoded[start - 1 : start] in b".,:" and encoded[start - 2 : start - 1].isdigit():
        return None  # "Python 3.10 added ...": the figures after a decimal point are no house number
    if encoded[end - 2 : end] in (b"Dr", b"St", b"DR", b"ST") and _DOCTOR_OR_SAINT.match(encoded, end):
        return None  # "3 Tips From Dr. Oz", "5 Facts About St. Louis"
    return "street_address"


# The kinds of candidate, in the order they are looked into: the best reason each can give,
# its RE2 pattern, and the check of each match.
_KINDS = (
    ("email", _re2(_OBFUSCATED), None),  # confirmed by has_obfuscated_email
    ("phone", _re2(_NUMBER), check_digit_run),  # phones, cards, IP addresses written with many digits
    ("ip_address", _re2(_IPV4), check_ipv4),
    ("ip_address", _re2(_IPV6), check_ipv6),
    ("street_address", _re2(_HOUSE_NUMBER_FIRST + "|" + _NUMBER_LAST), _street),
    ("iban", _re2(_IBAN), check_iban),
)


def _candidate_set() -> re2.Set:
    candidates = re2.Set.SearchSet(_LATIN1)
    for _kind in _KINDS:
        candidates.Add(_kind[1].pattern)
    candidates.Compile()
    return candidates


_CANDIDATES = _candidate_set()
