"""Runs of digits and the like, as releases.personal_data checks them: payment cards, phone
numbers, IP addresses and IBANs. Each check takes a candidate RE2 found in a text's UTF-8
bytes (its start and end) and gives the reason it carries personal data, or None.

The rules themselves come from the libraries that keep them: phonenumbers (every country's
numbering plan), python-stdnum (Luhn, IBAN, ISBN) and ipaddress (reserved ranges).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable

# Google's libphonenumber, kept up to date with every country's numbering plan: it knows
# which numbers are allocated and how each country groups them.
import phonenumbers
from phonenumbers import Leniency, PhoneMetadata, PhoneNumberMatcher

# python-stdnum: the Luhn check of card numbers, IBAN validation (country, length, BBAN
# format, national and mod-97 check digits) and ISBN checksums, without writing those
# rules again.
from stdnum import iban as stdnum_iban
from stdnum import isbn as stdnum_isbn
from stdnum import luhn


def check_digit_run(encoded: bytes, start: int, end: int) -> str | None:
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


def check_ipv4(encoded: bytes, start: int, end: int) -> str | None:
    before = encoded[max(0, start - 24) : start].decode("utf-8", "ignore")
    after = encoded[end : end + 2].decode("utf-8", "ignore")
    if before.endswith(".") or after[:1].isdigit() or (after[:1] == "." and after[1:2].isdigit()):
        return None  # part of a longer dotted number (an OID, "1.2.3.4.5")
    return "ip_address" if _public_ipv4(encoded[start:end].decode(), before, after) else None


_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


def check_ipv6(encoded: bytes, start: int, end: int) -> str | None:
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


def check_iban(encoded: bytes, start: int, end: int) -> str | None:
    if start and chr(encoded[start - 1]).isalnum():
        return None  # "ABCDE12...": a word, not a country code
    compact = encoded[start:end].replace(b" ", b"").decode("ascii", "ignore")
    # The pattern may take a capitalised word after the IBAN along; shorten until valid.
    for length in range(min(len(compact), 34), 14, -1):
        if stdnum_iban.is_valid(compact[:length]):
            return "iban"
    return None
