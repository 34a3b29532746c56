"""Does a battle carry personal data? Pure: its texts in, the first reason found out.

Community data releases (releases/building.py) publish a share of the arena's battles. A
battle whose prompts or answers hold an e-mail address, a phone number, a payment card
number, a public IP address, a street address or an IBAN is left out, and the release
manifest counts it under that reason. Leaving out a clean battle costs one row of a
release; publishing someone's phone number cannot be taken back. So every check leans
towards flagging, and what is let through is only what is known to point at nobody:
reserved example domains, private IP ranges, numbers that fail their checksum or are not
allocated, and the like (each one is said where it is decided, below).

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
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable

# Google's libphonenumber, kept up to date with every country's numbering plan: it knows
# which numbers are allocated and how each country groups them.
import phonenumbers
import re2
from phonenumbers import Leniency, PhoneMetadata, PhoneNumberMatcher

# python-stdnum: the Luhn check of card numbers, IBAN validation (country, length, BBAN
# format, national and mod-97 check digits) and ISBN checksums, without writing those
# rules again.
from stdnum import iban as stdnum_iban
from stdnum import isbn as stdnum_isbn
from stdnum import luhn

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
    if ("\uff20" in text or "\ufe6b" in text) and _has_email(text.translate(_WIDE_AT)):
        return "email"  # "zhang.san＠163.com": a full-width or small "@" (and dots) as ASCII
    if "@" in text and _has_email(text):
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
            if _has_obfuscated_email(text):
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
# E-mail addresses: a regex (the syntax only; email-validator checks one address at a time
# and would add nothing but cost). The search starts at "@", a literal, so texts without
# an address pay next to nothing.

_EMAIL_DOMAIN = re.compile(r"@( ?)((?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+([^\W\d_]{2,63}))(?![\w-]|\.[^\W_])")
# The local part as people write it (letters, digits, "._%+-"): RFC 5322 allows quotes and
# more, but then 'user@example.com' in code would read as an address starting with "'".
_EMAIL_LOCAL = re.compile(r"[\w.%+-]{1,64}\Z")
# The domains RFC 2606 and RFC 6761 reserve for examples and tests name no one:
# user@example.com is not personal data.
_RESERVED_DOMAIN = re.compile(
    r"(?:^|\.)(?:example\.(?:com|net|org)|example|test|invalid|localhost|local)\Z", re.IGNORECASE
)
# Placeholders that code samples and tutorials put before the "@" (your.email@gmail.com,
# user@company.com) and service accounts that are no person's (git@github.com in an SSH
# remote, noreply@...). A real person's address is none of these.
_PLACEHOLDER_LOCAL = re.compile(
    r"(?:your[\w.+-]*|you|user(?:name)?|e-?mail|name|someone|somebody|sender|recipient|receiver|"
    r"(?:john|jane)[._-]?doe|first(?:name)?[._-]?last(?:name)?|git|no-?reply|do-?not-?reply|mailer-daemon)\Z",
    re.IGNORECASE,
)
# "icon@2x.png" is an image at double resolution, not an address.
_ASSET = re.compile(r"\d+(?:\.\d+)?x\.[a-z]+\Z", re.IGNORECASE)


def _has_email(text: str) -> bool:
    for match in _EMAIL_DOMAIN.finditer(text):
        at = match.start()
        # "jane.roe @ gmail.com": one space on either side of the "@" still makes an address
        # (a way to dodge a filter), if what follows ends in a real top-level domain and is
        # no call; a spaced "@" is otherwise code: "x @ self.weights", "q @ k.to(device)"
        # multiply matrices in Python.
        spaced_before = text[at - 1 : at] == " "
        spaced = spaced_before or match.group(1)
        if spaced and (match.group(3).lower() not in _TLDS or text[match.end() : match.end() + 1] in ("(", "[")):
            continue
        end = at - 1 if spaced_before else at
        local = _EMAIL_LOCAL.search(text, max(0, end - 64), end)
        if local is None:
            continue  # "@app.route", "@types/node": nothing before the "@"
        name = local.group().strip(".+-")
        if spaced and len(name) < 2:
            continue  # "a @ b.co": operands, not a mailbox
        domain = match.group(2)
        if not name or _RESERVED_DOMAIN.search(domain) or _ASSET.match(domain):
            continue
        if _PLACEHOLDER_LOCAL.match(name):
            continue
        return True
    return False


# Full-width and small commercial at (U+FF20, U+FE6B) and full-width and ideographic full
# stops, as in "zhang.san＠163．com", read as their ASCII forms.
_WIDE_AT = str.maketrans({"\uff20": "@", "\ufe6b": "@", "\uff0e": ".", "\u3002": "."})

# "jane.smith [at] uni-heidelberg [dot] de", "jane(at)example.org": checked only when the
# candidate pass saw an "[at]" or "(at)" (_OBFUSCATED).
_OBFUSCATED_EMAIL = re.compile(
    r"[\w.+-]+\s*[\[(]\s*at\s*[\])]\s*[^\W_][\w-]*(?:\s*(?:[\[(]\s*dot\s*[\])]|\.)\s*[^\W_][\w-]*)+", re.IGNORECASE
)
# "jane dot roe at gmail dot com", "jane.roe AT gmx DOT net": the words themselves, checked
# only when the candidate pass saw "<word> at <word> dot <letter>". The domain must end in
# " dot " and a real top-level domain; its first word must not be one that follows "at" in
# a sentence ("peaked at the dot com bubble").
_SPELLED_EMAIL = re.compile(
    r"(?<![\w.+-])([^\W_][\w+-]*(?:(?: dot |\.)[\w+-]+)*) at "
    r"([^\W_][\w-]*)((?: dot [^\W_][\w-]*)*) dot ([^\W\d_]{2,24})\b",
    re.IGNORECASE,
)
_SPELLED_DOT = re.compile(r" dot ", re.IGNORECASE)
_SENTENCE_WORDS = frozenset(
    "the a an this that these those my your his her its our their each every any some one no all "
    "least most first last once home work night noon".split()
)


def _has_obfuscated_email(text: str) -> bool:
    if _OBFUSCATED_EMAIL.search(text):
        return True
    for match in _SPELLED_EMAIL.finditer(text):
        local, first, rest, tld = match.groups()
        if first.lower() in _SENTENCE_WORDS or tld.lower() not in _TLDS:
            continue
        address = _SPELLED_DOT.sub(".", f"{local}@{first}{rest}.{tld}")
        if _has_email(address):  # the same placeholders and reserved domains are let through
            return True
    return False


# Top-level domains a spaced or spelled-out address must end in: the generic ones people
# write addresses with, and every country's (phonenumbers knows the regions; .uk and .eu are
# not among them).
_TLDS = frozenset(
    "com org net edu gov mil int info biz name pro mobi asia tel travel jobs museum coop aero "
    "io co ai app dev me tv cc xyz online site tech email mail cloud shop store blog uk eu".split()
) | frozenset(region.lower() for region in phonenumbers.SUPPORTED_REGIONS)


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
# Digit runs: payment cards, IP addresses written inside them, phone numbers.


def _number(encoded: bytes, start: int, end: int) -> str | None:
    if end - start > 19 and encoded[start:end].isdigit():
        return None  # unbroken and too long for a phone or a card: an ID, a hash, a constant
    run = encoded[start:end].decode("utf-8", "replace").replace("\xa0", " ")
    before = encoded[max(0, start - 48) : start].decode("utf-8", "ignore")
    after = encoded[end : end + 24].decode("utf-8", "ignore")
    if before.rstrip()[-1:].isupper() and _IBAN_SO_FAR.search(before):
        return None  # the account digits of an IBAN ("GB29 NWBK 6016 1331 9268 19"), judged as one
    quads = list(_DOTTED_QUAD.finditer(run))
    for quad in quads:
        if _public_ipv4(quad.group(), before + run[: quad.start()], run[quad.end() :] + after):
            return "ip_address"
    # Glued to a Latin letter or digit ("x1234567890", "0x7fff...", "1234567890abcdef"), or
    # by a dash or underscore ("9bd0f56a-2390-4764-a30d": a UUID): an identifier or a
    # hash, as phonenumbers' own matcher decides too. CJK text puts numbers right after
    # words ("电话13800138000"), so only Latin letters count.
    if (
        _is_latin_alnum(before[-1:])
        or (before[-1:] in "-_" and _is_latin_alnum(before[-2:-1]))
        or _is_latin_alnum(after[:1])
        or (after[:1] in "-_" and _is_latin_alnum(after[1:2]))
    ):
        return None
    if after.startswith("%"):
        # "... 47%": the last figure is a percentage, whatever came before it.
        cut = _LAST_GROUP.search(run)
        if cut is None or cut.start() == 0:
            return None
        run, after = run[: cut.start()], run[cut.start() :] + after
    if not run.startswith("+"):  # "+4915123451085" is a phone number
        if _card_in(run):
            return "payment_card"
        if _CARD.fullmatch(run):
            return None  # written as a card number, but fails Luhn or has no issuer: not a phone either
    if not quads and _phone_in(run, before, after):
        return "phone"
    return None


_LAST_GROUP = re.compile(r"[^\d]*\d+\Z")
_IBAN_SO_FAR = re.compile(r"\b[A-Z]{2}\d\d(?: ?[0-9A-Z]{4})* ?\Z")


def _is_latin_alnum(char: str) -> bool:
    return char == "_" or (char.isalnum() and ord(char) < 0x250)


# Published test numbers of card processors (Stripe, Braintree, Adyen, PayPal): in code
# samples all the time, and nobody's card.
_TEST_CARDS = frozenset(
    {
        "4242424242424242",
        "4000056655665556",
        "4111111111111111",
        "4012888888881881",
        "4222222222222",
        "4000000000000002",
        "4000000000009995",
        "4000002500003155",
        "5555555555554444",
        "5200828282828210",
        "5105105105105100",
        "2223003122003222",
        "378282246310005",
        "371449635398431",
        "378734493671000",
        "6011111111111117",
        "6011000990139424",
        "6011000000000012",
        "3056930009020004",
        "36227206271667",
        "30569309025904",
        "38520000023237",
        "3566002020360505",
        "3530111333300000",
        "6200000000000005",
        "6759649826438453",
    }
)
# How card numbers are written: unbroken, in fours (the last group shorter on 13-, 15- and
# 19-digit cards), or 4-6-5 / 4-6-4 (American Express, Diners). Inside a longer run
# ("ref 12 4111 1111 1111 1111", "2021-02-08 4111-...") such a shape is looked for
# anywhere; an unbroken run longer than 19 digits is an ID, not a card.
_CARD = re.compile(
    r"(?<![\d-])(?:\d{13,19}|\d{4}([ -])\d{4}\1\d{4}\1\d{1,4}(?:\1\d{1,3})?|\d{4}([ -])\d{6}\2\d{4,5})(?![\d]|[ -]\d)"
)


def _card_in(run: str) -> bool:
    """A 13-19 digit card number written as cards are, that passes Luhn and has an
    issuer's first digits."""
    for candidate in _CARD.finditer(run):
        digits = candidate.group().replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and _is_card(digits):
            return True
    return False


def _is_card(digits: str) -> bool:
    first = digits[0]
    # Issuers: 2 (Mastercard 2-series, Mir), 3 (Amex, JCB, Diners), 4 (Visa), 5
    # (Mastercard, Maestro), 6 (Discover, UnionPay, Maestro, RuPay), 81-82 (RuPay), and
    # 15-digit UATP cards starting with 1. 0, 7, 8x and 9 are not payment cards, which
    # keeps out 13-digit millisecond timestamps and ISBN-13s (978/979).
    if not (first in "23456" or digits[:2] in ("81", "82") or (first == "1" and len(digits) == 15)):
        return False
    return luhn.is_valid(digits) and digits not in _TEST_CARDS


# Phone numbers. Nearly every run of 9-11 digits is a valid number in one of the regions
# tried ("2147483647" in the US, "1234567890" in India), so libphonenumber's word alone
# would flag every large number in code. A candidate is a phone number when:
#   - it is written internationally (+49 ..., 0049 ...) and is valid: unambiguous;
#   - it is grouped (spaces, dashes, dots, parentheses) the way some region writes its
#     valid numbers (Leniency.STRICT_GROUPING: "(212) 736-5000" in the US, "06 12 34 56
#     78" in France, "030 1234567" in Germany), which thousands ("250 000 000") are not;
#   - or it is valid somewhere, however grouped or not grouped at all, and a word about
#     phones stands near it ("call me on 2127365000", "Tel. 21 27 36 50 00", "手机13800138000");
#     the word makes the matcher's grouping check unnecessary.
# What libphonenumber would waste time on, or wrongly accept, is set aside first.
_DATE_LIKE = re.compile(
    r"(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4})(?:[ T]\d{1,2})?"  # 2023-10-15, 15.10.2023
    r"|(?:1[89]|20)\d\d ?[-/] ?(?:1[89]|20)\d\d"  # 1990-2000, 2019/2020
    r"|\d+\.\d+"  # 3.14159265358
)
_EXPIRY = re.compile(r"[01]?\d/\d\d(?:/\d{2,4})?\b")  # 06/30, 10/15/2023: a card's expiry, a date
_ISO_DATE = re.compile(r"(?:19|20)\d\d-[01]\d-[0-3]\d")
_ISBN_CONTEXT = re.compile(r"isbn(?:-1[03])?:?\s*\Z", re.IGNORECASE)
_THOUSANDS = re.compile(r"\d{1,3}(?:\.\d{3})+|\d{1,3}(?: \d{3})+")
# NANP numbers with area code or exchange 555 are the films' and the tutorials'
# placeholder, "(555) 123-4567": no one's number.
_NANP_PLACEHOLDER = re.compile(r"1?(?:555\d{7}|\d{3}555\d{4})")
_DIGIT_GROUP = re.compile(r"\d+")
_CURRENCY = frozenset("$€£¥₹₽₩₪¢₺₫฿")
_CURRENCY_AFTER = re.compile(r" ?[$€£¥₹₽₩₪¢₺₫฿](?![\d$])")  # not LaTeX's "$$"
# Words about phones, in the arena's main languages, looked up word by word (a regex with
# fifty alternatives tried at every character costs 10-20 µs on a few dozen). Not
# "number" or "call" alone, which stand next to every large number in math and code ("the
# 40th Fibonacci number is 102334155", "function call"), but "my number", "call me".
_PHONE_STEMS = (
    "phone", "telephon", "telefon", "téléphon", "teléfon", "mobil", "cellphone", "cellular", "contact", "whatsapp",
    "wechat", "viber", "hotline", "dialing", "dialling", "rufnummer", "anruf", "appel", "llám", "llamad", "llamar",
    "celular", "contato", "cellulare", "chiam", "телефон", "звон", "моб", "контакт",
)  # fmt: skip
_PHONE_WORDS = frozenset(("tel", "tél", "fax", "sms", "cell", "dial", "handy", "тел"))
_POSSESSIVES = (
    "my", "our", "his", "her", "their", "your", "mobile", "cell", "contact", "mon", "ma", "mi", "su", "meine",
    "seine", "ihre", "mio", "il", "meu", "мой", "наш",
)  # fmt: skip
_PHONE_PAIRS = frozenset(
    [("call", w) for w in ("me", "us", "him", "her", "them", "at", "on")]
    + [(w, n) for w in _POSSESSIVES for n in ("number", "no", "numéro", "número", "numero", "nummer", "номер")]
    + [("reach", "me"), ("reach", "us"), ("text", "me"), ("ring", "me"), ("number", "to")]
)
_PHONE_SIGNS = re.compile("电话|電話|手机|手機|号码|號碼|携帯|連絡|전화|휴대폰|핸드폰|연락|फ़ोन|फोन|मोबाइल|☎|📞|📱")
_WORD = re.compile(r"[^\W\d_]+")


def _phone_context(window: str) -> bool:
    """Does `window` (the text around a number) speak of phones?"""
    words = _WORD.findall(window.lower())
    if any(word in _PHONE_WORDS or word.startswith(_PHONE_STEMS) for word in words):
        return True
    if any(pair in _PHONE_PAIRS for pair in zip(words, words[1:], strict=False)):
        return True
    return not window.isascii() and _PHONE_SIGNS.search(window) is not None


def _phone_in(run: str, before: str, after: str) -> bool:
    if _DATE_LIKE.fullmatch(run.strip("()+")) or ("isbn" in before[-12:].lower() and _ISBN_CONTEXT.search(before)):
        return False
    if not run.startswith("+") and (before.rstrip()[-1:] in _CURRENCY or _CURRENCY_AFTER.match(after)):
        return False  # $ 1 234 567, 1 234 567 € (not "... 58484 €6103.43", the next price)
    context: bool | None = None  # looked up once, when needed
    for candidate in _phone_candidates(run):
        verdict = _phone_verdict(candidate)
        if verdict is True:
            return True
        if verdict is None:
            if context is None:
                context = _phone_context(before[-40:] + " | " + after[:20])
            if context and _valid_regions(candidate):
                return True
    return False


def _phone_candidates(run: str) -> Iterable[str]:
    """The run itself, then each stretch of whole digit groups with 7-15 digits, longest
    first: a run can hold more than one number ("030 1234567 / 030 7654321") or a number
    and the figure after it ("WhatsApp +34 612 34 36 86 000 people")."""
    groups = [(m.start(), m.end()) for m in _DIGIT_GROUP.finditer(run)]
    if sum(end - start for start, end in groups) <= 17:
        yield run
    if len(groups) < 2 or _THOUSANDS.fullmatch(run):
        return
    stretches = []
    for i in range(len(groups)):
        digits = 0
        for j in range(i, len(groups)):
            digits += groups[j][1] - groups[j][0]
            if digits > 15:
                break
            if digits >= 7 and (i, j) != (0, len(groups) - 1):
                stretches.append((digits, i, j))
    stretches.sort(key=lambda s: (-s[0], s[1]))
    for _, i, j in stretches[:16]:
        start = groups[i][0]
        while start > 0 and run[start - 1] in "+(":
            start -= 1
        yield run[start : groups[j][1]]


def _phone_verdict(candidate: str) -> bool | None:
    """True: a phone number. False: not one. None: it may be one, if a word about phones
    stands nearby (then it must still be valid in some region)."""
    groups = _DIGIT_GROUP.findall(candidate)
    digits = "".join(groups)
    if len(groups) > 2 and sum(len(g) == 1 for g in groups[1:]) >= 2:
        return False  # "1 2 3 4 5 6 7", "1.2.3.4.5.6.7": a list or a version, not a number
    if len(groups) in (4, 5) and len(groups[-1]) == 1 and "-" in candidate and stdnum_isbn.is_valid(candidate):
        return False  # 0-306-40615-2: an ISBN's hyphenation and check digit
    if _DOTTED_QUAD.fullmatch(candidate) or _ISO_DATE.search(candidate):
        return False  # an IP address, judged as one; a date and the figures around it
    if candidate.startswith("+") or (digits.startswith("00") and digits[2:3] != "0"):
        return _valid_international(digits if candidate.startswith("+") else digits[2:])
    if not 7 <= len(digits) <= 15 or _NANP_PLACEHOLDER.fullmatch(digits) or _EXPIRY.match(candidate):
        return False
    if len(digits) < 9 and not (len(groups) == 2 and len(groups[0]) == len(groups[1]) == 4):
        return False  # a national number with its area code has 9 digits or more (8 as 4-4 in HK, SG)
    if len(groups) == 1:
        # Unbroken: 9 (Spain) to 12 digits; shorter ones are local numbers no region
        # calls valid, longer ones IDs. Grouping says nothing here, so context decides.
        return None if 9 <= len(digits) <= 12 else False
    if _THOUSANDS.fullmatch(candidate):
        # 1.234.567, 213 549 000, 250 000 000: a quantity written in thousands, unless a
        # word about phones says otherwise (Spanish and Polish numbers are grouped 3-3-3).
        return None
    regions = _valid_regions(candidate)
    if not regions:
        return False
    if any(_matches(candidate, region, Leniency.STRICT_GROUPING) for region in regions):
        return True
    return None


def _matches(candidate: str, region: str, leniency: int) -> bool:
    try:
        return any(True for _ in PhoneNumberMatcher(candidate, region, leniency=leniency))
    except Exception:  # a malformed candidate is not a number; never let it stop a release
        return False


# The regions whose national format (no "+") is tried: the most populous countries and the
# arena's main languages. Each costs only a dictionary look-up unless the digits fit its
# lengths and general pattern; NANP (US) covers Canada and the Caribbean.
NATIONAL_REGIONS = (
    "US", "GB", "IN", "CN", "DE", "FR", "ES", "IT", "BR", "MX", "RU", "JP", "KR", "AU",
    "NL", "BE", "CH", "AT", "PL", "PT", "SE", "TR", "UA", "ID", "VN", "TH", "PH", "MY", "SG",
    "HK", "TW", "PK", "BD", "IR", "SA", "AE", "EG", "NG", "KE", "ZA", "AR", "CO", "CL", "IE", "NZ",
)  # fmt: skip

# Numbers of these types are a person's; toll-free, premium-rate, shared-cost and UAN
# numbers are businesses' lines ("1-800-...") and are not flagged.
_PERSONAL_TYPES = ("fixed_line", "mobile", "personal_number", "voip", "pager", "voicemail")

_Desc = tuple[re.Pattern[str], frozenset[int]]


# libphonenumber's own is_valid_number compiles its patterns through re's cache, which
# holds 512 of them; forty-odd regions' patterns do not fit, and every check recompiles
# (about 300 µs). The same metadata compiled once here answers "is this national number
# valid in that country, as a line of a person's type" in a few µs, and only numbers that
# pass go on to the matcher.
@functools.cache
def _country(country_code: int) -> tuple[tuple[_Desc, tuple[_Desc, ...]], ...]:
    plans = []
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ()):
        metadata = PhoneMetadata.metadata_for_region(region)
        if metadata is None or metadata.general_desc is None:
            continue
        types = tuple(desc for name in _PERSONAL_TYPES if (desc := _desc(getattr(metadata, name, None))) is not None)
        general = _desc(metadata.general_desc)
        if general is not None and types:
            plans.append((general, types))
    return tuple(plans)


def _desc(desc: object) -> _Desc | None:
    pattern = getattr(desc, "national_number_pattern", None)
    if not pattern:
        return None
    lengths = frozenset(length for length in (getattr(desc, "possible_length", None) or ()) if length > 0)
    return re.compile(pattern), lengths


def _valid_national_number(country_code: int, national: str) -> bool:
    for (general, general_lengths), types in _country(country_code):
        if (general_lengths and len(national) not in general_lengths) or not general.fullmatch(national):
            continue
        for pattern, lengths in types:
            if (not lengths or len(national) in lengths) and pattern.fullmatch(national):
                return True
    return False


def _valid_international(digits: str) -> bool:
    """+49 30 1234567, 0033 6 12 34 56 78: country codes are prefix-free, so at most one of
    the first three prefixes is one. "(0)" after the code is a trunk prefix, tried off too."""
    for size in (1, 2, 3):
        country_code = int(digits[:size] or 0)
        if country_code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            national = digits[size:]
            return _valid_national_number(country_code, national) or (
                national.startswith("0") and _valid_national_number(country_code, national[1:])
            )
    return False


@functools.cache
def _region_table() -> dict[int, list[tuple[str, int, re.Pattern[str] | None, str | None]]]:
    """For each count of digits, the regions whose national numbers can have it, with the
    country code and the national prefix (trunk "0", NANP "1", Russia's "8", carrier
    codes) that may stand in front."""
    table: dict[int, list[tuple[str, int, re.Pattern[str] | None, str | None]]] = {}
    for region in NATIONAL_REGIONS:
        metadata = PhoneMetadata.metadata_for_region(region)
        if metadata is None or metadata.general_desc is None:
            continue
        prefix = metadata.national_prefix_for_parsing
        entry = (
            region,
            metadata.country_code,
            re.compile(prefix) if prefix else None,
            metadata.national_prefix_transform_rule or None,
        )
        lengths = set(metadata.general_desc.possible_length or ())
        for count in range(4, 20):
            if any(0 <= count - length <= 7 for length in lengths):
                table.setdefault(count, []).append(entry)
    return table


@functools.lru_cache(maxsize=4096)
def _valid_regions(candidate: str) -> tuple[str, ...]:
    """Regions in which the digits of `candidate`, written nationally, are a valid number."""
    digits = "".join(_DIGIT_GROUP.findall(candidate))
    found = []
    for region, country_code, prefix, transform in _region_table().get(len(digits), ()):
        variants = [digits]
        stripped = prefix.match(digits) if prefix is not None else None
        if stripped and stripped.end():
            variants.append(digits[stripped.end() :])
            if transform:  # Argentina's and Brazil's carrier codes and mobile "15"
                variants.append(stripped.expand(transform) + digits[stripped.end() :])
        if any(_valid_national_number(country_code, national) for national in variants):
            found.append(region)
    return tuple(found)


# ---------------------------------------------------------------------------------------
# IP addresses.

_DOTTED_QUAD = re.compile(r"(?<![\d.])\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?!\.?\d)")
# A version number that happens to be a public address: pip/npm pins and the words that
# introduce a version ("numpy==1.2.3.4", "v1.2.3.4", "version 2.1.0.5"); not "@", which is
# "root@203.0.114.5" far more often than an npm pin with four parts. Anywhere else a
# public dotted quad is taken for an address, even "see section 2.1.3.4", a cheap miss.
_VERSION_CONTEXT = re.compile(
    r"(?:[=~<>!]=|[\^~]|[A-Za-z_]-|\b[vV]\.?|\b(?:version|release|build|firmware|ver\.?|update|patch)\s*[:#]?\s*)\Z",
    re.IGNORECASE,
)


_PRIVATE_PREFIXES = ("10.", "127.", "192.168.", "0.", "169.254.", "255.")


def _public_ipv4(address: str, before: str, after: str) -> bool:
    if address.startswith(_PRIVATE_PREFIXES):
        return False  # the common private and loopback addresses, before any parsing
    if before[-1:].isalnum() or after[:1].isalpha() or _VERSION_CONTEXT.search(before):
        return False
    try:
        ip = ipaddress.IPv4Address(address)  # rejects 999.1.1.1 and leading zeros
    except ValueError:
        return False
    # Private (10/8, 172.16/12, 192.168/16), loopback, link-local, shared (100.64/10),
    # documentation (192.0.2/24, ...), multicast and reserved ranges are not flagged: such
    # an address is on millions of home networks or on none, and identifies no one.
    # is_global is false for all of them.
    return ip.is_global


def _ipv4(encoded: bytes, start: int, end: int) -> str | None:
    before = encoded[max(0, start - 24) : start].decode("utf-8", "ignore")
    after = encoded[end : end + 2].decode("utf-8", "ignore")
    if before.endswith(".") or after[:1].isdigit() or (after[:1] == "." and after[1:2].isdigit()):
        return None  # part of a longer dotted number (an OID, "1.2.3.4.5")
    return "ip_address" if _public_ipv4(encoded[start:end].decode(), before, after) else None


_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


def _ipv6(encoded: bytes, start: int, end: int) -> str | None:
    if start and (chr(encoded[start - 1]).isalnum() or encoded[start - 1 : start] in (b":", b".")):
        return None  # "fe80::1" read from its middle, "std::..."
    following = encoded[end : end + 2]
    if following[:1].isalnum() or following[:1] == b":" or (following[:1] == b"." and following[1:].isalnum()):
        return None  # part of something longer (a sentence's full stop is fine)
    try:
        ip = ipaddress.IPv6Address(encoded[start:end].decode())
    except ValueError:
        return None
    # Only global unicast (2000::/3) outside the special ranges: "a::b" in C++ or
    # "dead::beef" parse as addresses but are in no routed range; 2001:db8::/32 is for
    # documentation.
    return "ip_address" if ip in _GLOBAL_UNICAST and ip.is_global else None


# ---------------------------------------------------------------------------------------
# IBANs: python-stdnum validates country, length, format and the mod-97 checksum.


def _iban(encoded: bytes, start: int, end: int) -> str | None:
    if start and chr(encoded[start - 1]).isalnum():
        return None  # "ABCDE12...": a word, not a country code
    compact = encoded[start:end].replace(b" ", b"").decode("ascii", "ignore")
    # The pattern may take a capitalised word after the IBAN along; shorten until valid.
    for length in range(min(len(compact), 34), 14, -1):
        if stdnum_iban.is_valid(compact[:length]):
            return "iban"
    return None


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
    ("email", _re2(_OBFUSCATED), None),  # confirmed by _OBFUSCATED_EMAIL
    ("phone", _re2(_NUMBER), _number),  # phones, cards, IP addresses written with many digits
    ("ip_address", _re2(_IPV4), _ipv4),
    ("ip_address", _re2(_IPV6), _ipv6),
    ("street_address", _re2(_HOUSE_NUMBER_FIRST + "|" + _NUMBER_LAST), _street),
    ("iban", _re2(_IBAN), _iban),
)


def _candidate_set() -> re2.Set:
    candidates = re2.Set.SearchSet(_LATIN1)
    for _kind in _KINDS:
        candidates.Add(_kind[1].pattern)
    candidates.Compile()
    return candidates


_CANDIDATES = _candidate_set()
