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
each, must be built in a minute in all, which leaves this check about 4 µs a text. One
scan of a 1,000-character text by a `re` pattern that starts with a character class
already costs that much (CPython tests every character against the class), while a search
for a literal runs at memchr speed. So each text is encoded to UTF-8 once and translated
with a byte table that turns every digit into "0" (the "shape"; offsets stay the same);
then one pattern that starts with the literal "0" jumps from digit run to digit run and
tries, at each, the shapes of every kind of finding: a long run of digits and separators
(phone, card), a dotted quad, an IPv6 address, an IBAN, a street address. Only its rare
matches reach Python, and only those that survive cheap checks reach the libraries that
decide: phonenumbers, python-stdnum and ipaddress. A text with no "@" and no digit costs
an encode, a translate and two searches for a literal.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable

# Google's libphonenumber, kept up to date with every country's numbering plan: it knows
# which numbers are allocated, so a run of digits is a phone number only when it is one
# somewhere, and its matcher leaves out dates, timestamps and prices on its own.
import phonenumbers
from phonenumbers import Leniency, PhoneMetadata, PhoneNumber, PhoneNumberMatcher

# python-stdnum: the Luhn check of card numbers, IBAN validation (country, length, BBAN
# format, mod-97 checksum) and ISBN checksums, without writing those rules again.
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
    if "@" in text and _has_email(text):
        return "email"
    encoded = text.encode("utf-8", "surrogatepass")
    if not encoded.isascii() and _has_foreign_digits(encoded):
        # Arabic-Indic, Persian, Devanagari and full-width digits, as ASCII (rare: the
        # translation is slow, the search for their UTF-8 lead bytes is not).
        text = text.translate(_FOREIGN_DIGITS)
        encoded = text.encode("utf-8", "surrogatepass")
    shape = encoded.translate(_SHAPE)
    if b"at)" in shape and _OBFUSCATED_EMAIL.search(text):
        return "email"
    best: str | None = None
    for match in _SCAN.finditer(shape):
        reason = _HANDLERS[match.lastgroup or ""](encoded, match)
        if reason is not None and (best is None or _RANK[reason] < _RANK[best]):
            best = reason
            if reason == "phone":  # nothing after e-mail ranks higher
                return best
    return best


# ---------------------------------------------------------------------------------------
# E-mail addresses: a regex (the syntax only; email-validator checks one address at a time
# and would add nothing but cost). The search starts at "@", a literal, so texts without
# an address pay next to nothing.

_EMAIL_DOMAIN = re.compile(r"@((?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63})(?![\w-]|\.[^\W_])")
_EMAIL_LOCAL = re.compile(r"[\w!#$%&'*+/=?^`{|}~.-]{1,64}\Z")
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
        local = _EMAIL_LOCAL.search(text, max(0, at - 64), at)
        if local is None:
            continue  # "@app.route", "@types/node": nothing before the "@"
        name = local.group().strip(".")
        domain = match.group(1)
        if not name or _RESERVED_DOMAIN.search(domain) or _ASSET.match(domain):
            continue
        if _PLACEHOLDER_LOCAL.match(name):
            continue
        return True
    return False


# "jane.smith [at] uni-heidelberg [dot] de", "jane(at)example.org": the shape maps "[" and
# "]" to parentheses, so one literal search ("at)") guards this rare pattern.
_OBFUSCATED_EMAIL = re.compile(
    r"[\w.+-]+\s*[\[(]\s*at\s*[\])]\s*[^\W_][\w-]*(?:\s*(?:[\[(]\s*dot\s*[\])]|\.)\s*[^\W_][\w-]*)+", re.IGNORECASE
)


# ---------------------------------------------------------------------------------------
# The shape and the one scan.

_SHAPE = bytes.maketrans(b"0123456789[]", b"0000000000()")
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

def _utf8(text: str) -> bytes:
    """`text` as UTF-8 for a bytes pattern ("|" stays an alternation)."""
    return b"|".join(re.escape(part.encode()) for part in text.split("|"))


# English and other "number, name, type" addresses: 221B Baker Street, 1600 Pennsylvania
# Avenue NW, 42 Wallaby Way, 350 Fifth Ave, 123 main st. The name is one to four
# capitalised words or ordinals (a lower-case name only with a full street word), so that
# "5 ways to cross the road" and "2 hard drives" are not addresses. "Dr"/"St" before a
# capitalised word are a doctor and a saint ("3 Tips From Dr. Oz", "5 Facts About St. Louis").
_EN_TYPES = (
    rb"Street|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Court|Ct|Place|Pl|Terrace|Way|Circle|Parkway|"
    rb"Pkwy|Highway|Hwy|Square|Sq|Trail|Crescent|Close|Grove|Gardens|Row|Mews|Alley|Plaza|Loop|Pike|"
    rb"Turnpike|Expressway|Freeway|Causeway|Quay|Wharf|Embankment|Dr(?!\.?\x20[A-Z])|St(?!\.?\x20[A-Z])|"
    rb"STREET|AVENUE|AVE|ROAD|RD|BOULEVARD|BLVD|LANE|DRIVE|DR|COURT|PLACE|WAY|HIGHWAY|ST"
)
_EN_STREET = (
    rb"0{0,5}[A-Za-z]?(?:[-/]0{1,4}[A-Za-z]?)?,?\x20{1,2}"
    rb"(?:"
    rb"(?:(?:[A-Z][A-Za-z\x80-\xff'.\-]*|0{1,3}(?:st|nd|rd|th))\x20){1,4}(?:" + _EN_TYPES + rb")\b"
    rb"|[a-z]{3,15}\x20(?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln)\b"
    rb"|Broadway\b"
    rb")"
)
# French, Belgian, Swiss: 12 rue de la Paix, 5, avenue Anatole France, 14 bis rue des Lilas.
_FR_STREET = (
    rb"0{0,3}(?:\x20?(?:bis|ter|[A-Za-z]))?,?\x20"
    rb"(?i:rue|avenue|av\.|boulevard|bd|place|chemin|all(?:\xc3\xa9|e)e|impasse|quai|route|cours|square|"
    rb"passage|voie|esplanade|faubourg|rond-point)\x20"
    rb"(?:(?i:de|du|des|la|le|les|l'|d')\b|[A-Z]|\xc3[\x80-\x9f])"
)
# German, Dutch and Nordic "name+type number": Hauptstraße 5, Berliner Str. 12a,
# Kalverstraat 92, Drottninggatan 3. The number comes after the street, so these are
# look-behinds from the digit (the run's first digit, already taken, is the "0" at the
# end). Short generic types (weg, ring, platz, ...) only as the end of a compound word:
# "Schillerweg 4", not "Platz 2" (second place) or "gate 5".
_BEFORE_NUMBER = [
    rb"stra\xc3\x9fe\x20",
    rb"strasse\x20",
    rb"str\.\x20",
    rb"str\.",
    rb"straat\x20",
    rb"gasse\x20",
    rb"allee\x20",
    rb"gatan\x20",
    rb"gade\x20",
    rb"v\xc3\xa4gen\x20",
    rb"veien\x20",
]
_COMPOUND_BEFORE_NUMBER = [
    rb"weg\x20",
    rb"platz\x20",
    rb"ring\x20",
    rb"damm\x20",
    rb"ufer\x20",
    rb"steig\x20",
    rb"laan\x20",
    rb"gracht\x20",
    rb"plein\x20",
    rb"kade\x20",
    rb"singel\x20",
    rb"dijk\x20",
    rb"vej\x20",
]
_DE_STREET = (
    rb"(?i:"
    + rb"|".join(rb"(?<=" + suffix + rb"0)" for suffix in _BEFORE_NUMBER)
    + rb"|"
    + rb"|".join(rb"(?<=[a-z\x80-\xbf]" + suffix + rb"0)" for suffix in _COMPOUND_BEFORE_NUMBER)
    + rb")0{0,3}(?:\x20?[a-zA-Z])?(?![0A-Za-z]|[.,]0)"
)
# Chinese 建国路88号 / 中山街5號, Japanese 1丁目 / 3番地, Korean 세종대로 175 / ...길 12, and
# the post office boxes of English, German and Spanish.
_CJK_STREET = (
    rb"(?:" + rb"|".join(rb"(?<=" + _utf8(road) + rb"0)" for road in "路街道巷弄") + rb")0{0,4}(?:" + _utf8("号|號") + rb")"
    rb"|0{0,2}(?:" + _utf8("丁目|番地") + rb")"
    rb"|(?:(?<=" + _utf8("대로 ") + rb"0)|(?<=" + _utf8("길 ") + rb"0))0{0,3}(?![0])"
)
_PO_BOX = rb"(?i:(?<=p\.o\.\x20box\x200)|(?<=po\x20box\x200)|(?<=p\.\x20o\.\x20box\x200)|(?<=postfach\x200)|(?<=apartado\x200))"

_SCAN = re.compile(
    rb"0(?<!00)(?:"
    # An IBAN: two capitals, then its check digits and the account, grouped by fours or not.
    rb"(?P<iban>(?<=[A-Z][A-Z]0)(?<![0A-Za-z][A-Z][A-Z]0)0(?:\x20?[0A-Z]){10,30})"
    # Seven or more digits apart from separators: a phone or card number candidate.
    rb"|(?P<number>(?:(?:[\x20\-./()]|\xc2\xa0){0,3}0){6,})"
    rb"|(?P<ipv4>0{0,2}\.0{1,3}\.0{1,3}\.0{1,3})"
    # IPv6 with eight groups or a "::"; global unicast addresses start with a digit (2000::/3).
    rb"|(?P<ipv6>[0a-fA-F]{0,3}(?:(?::[0a-fA-F]{1,4}){7}|(?::[0a-fA-F]{1,4}){0,6}::(?:[0a-fA-F]{1,4}(?::[0a-fA-F]{1,4}){0,6})?))"
    rb"|(?P<street>" + _EN_STREET + rb"|" + _FR_STREET + rb"|" + _DE_STREET + rb"|" + _CJK_STREET + rb"|" + _PO_BOX + rb")"
    # A house number after a word: "Via Roma 10", "Calle Mayor 5", "Avenida Paulista, 1578";
    # Python looks for the street type before it.
    rb"|(?P<after_word>(?:(?<=[A-Za-z\x80-\xbf]\x200)|(?<=[A-Za-z\x80-\xbf][,.]\x200))0{0,3}[A-Za-z]?(?![0]|[.:]0))"
    rb")"
)


# ---------------------------------------------------------------------------------------
# Digit runs: payment cards, IP addresses written inside them, phone numbers.


def _number(encoded: bytes, match: re.Match[bytes]) -> str | None:
    start, end = match.span()
    lead = start
    while lead > 0 and lead > start - 2 and encoded[lead - 1 : lead] in (b"+", b"("):
        lead -= 1
    run = encoded[lead:end].decode("utf-8", "replace").replace("\xa0", " ")
    before = encoded[max(0, lead - 48) : lead].decode("utf-8", "ignore")
    after = encoded[end : end + 24].decode("utf-8", "ignore")
    # Glued to a Latin letter or digit ("x1234567890", "0x7fff...", "1234567890abcdef"):
    # an identifier or a hash, as phonenumbers' own matcher decides too. CJK text puts
    # numbers right after words ("电话13800138000"), so only Latin letters count.
    if not (_is_latin_alnum(before[-1:]) or _is_latin_alnum(after[:1]) or after.startswith("%")):
        if _card_in(run):
            return "payment_card"
        if _phone_in(run, before, after):
            return "phone"
    for quad in _DOTTED_QUAD.finditer(run):
        if _public_ipv4(quad.group(), before + run[: quad.start()], run[quad.end() :] + after):
            return "ip_address"
    return None


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
_CARD_RUN = re.compile(r"\d(?:[ -]?\d)*")
_CARD_SEPARATOR = re.compile(r"[ -]")


def _card_in(run: str) -> bool:
    """A 13-19 digit card number, spaced or not, that passes Luhn and has an issuer's first
    digits. A run holding more than one number ("ref 12 4111 1111 1111 1111") is tried
    group by group; an unbroken run longer than 19 digits is an ID, not a card."""
    for candidate in _CARD_RUN.finditer(run):
        groups = _CARD_SEPARATOR.split(candidate.group())
        for i in range(len(groups)):
            digits = ""
            for group in groups[i:]:
                digits += group
                if len(digits) > 19:
                    break
                if len(digits) >= 13 and _is_card(digits):
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
_ISBN_CONTEXT = re.compile(r"isbn(?:-1[03])?:?\s*\Z", re.IGNORECASE)
_THOUSANDS = re.compile(r"\d{1,3}(?:\.\d{3})+|\d{1,3}(?: \d{3})+")
# NANP numbers with area code or exchange 555 are the films' and the tutorials'
# placeholder, "(555) 123-4567": no one's number.
_NANP_PLACEHOLDER = re.compile(r"1?(?:555\d{7}|\d{3}555\d{4})")
_DIGIT_GROUP = re.compile(r"\d+")
_CURRENCY = frozenset("$€£¥₹₽₩₪¢₺₫฿")
_PHONE_WORDS = re.compile(
    r"phone|\btel\b|call|mobile|\bcell|contact|whats ?app|\bsms\b|text me|\bfax\b|number|\bno\.|reach|dial|hotline|"
    r"telefon|handy|nummer|anruf|t[ée]l[ée]phone|portable|num[ée]ro|appel|tel[ée]fono|m[óo]vil|celular|n[úu]mero|"
    r"llam|contato|cellulare|chiam|телефон|\bтел|звон|номер|\bмоб|电话|電話|手机|手機|号码|號碼|携帯|連絡|"
    r"전화|휴대폰|핸드폰|연락|फ़ोन|फोन|मोबाइल|☎|📞|📱",
    re.IGNORECASE,
)


def _phone_in(run: str, before: str, after: str) -> bool:
    if _DATE_LIKE.fullmatch(run.strip("()+")) or _ISBN_CONTEXT.search(before):
        return False
    if before.rstrip()[-1:] in _CURRENCY or after.lstrip()[:1] in _CURRENCY:
        return False  # $ 1 234 567, 1 234 567 €
    context: bool | None = None  # looked up once, when needed
    for candidate in _phone_candidates(run):
        verdict = _phone_verdict(candidate)
        if verdict is True:
            return True
        if verdict is None:
            if context is None:
                context = bool(_PHONE_WORDS.search(before) or _PHONE_WORDS.search(after))
            if context and _valid_regions(candidate):
                return True
    return False


def _phone_candidates(run: str) -> Iterable[str]:
    """The run itself, and when it is too long to be one number ("030 1234567 / 030
    7654321"), each stretch of whole digit groups with 7-15 digits, longest first."""
    groups = [(m.start(), m.end()) for m in _DIGIT_GROUP.finditer(run)]
    total = sum(end - start for start, end in groups)
    if total <= 17:
        yield run
        return
    stretches = []
    for i in range(len(groups)):
        digits = 0
        for j in range(i, len(groups)):
            digits += groups[j][1] - groups[j][0]
            if digits > 15:
                break
            if digits >= 7:
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
    if _DOTTED_QUAD.fullmatch(candidate):
        return False  # an IP address, judged as one
    if candidate.startswith("+") or (digits.startswith("00") and digits[2:3] != "0"):
        return _valid_international(digits if candidate.startswith("+") else digits[2:])
    if not 7 <= len(digits) <= 15 or _NANP_PLACEHOLDER.fullmatch(digits):
        return False
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
        types = tuple(
            desc for name in _PERSONAL_TYPES if (desc := _desc(getattr(metadata, name, None))) is not None
        )
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
    r"(?:[=~<>!]=|[\^~]|[A-Za-z_]-|\b[vV]\.?|(?:version|release|build|firmware|ver\.?|update|patch)\s*[:#]?\s*)\Z",
    re.IGNORECASE,
)


def _public_ipv4(address: str, before: str, after: str) -> bool:
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


def _ipv4(encoded: bytes, match: re.Match[bytes]) -> str | None:
    start, end = match.span()
    before = encoded[max(0, start - 24) : start].decode("utf-8", "ignore")
    after = encoded[end : end + 2].decode("utf-8", "ignore")
    if before.endswith(".") or after[:1].isdigit() or (after[:1] == "." and after[1:2].isdigit()):
        return None  # part of a longer dotted number (an OID, "1.2.3.4.5")
    return "ip_address" if _public_ipv4(encoded[start:end].decode(), before, after) else None


_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


def _ipv6(encoded: bytes, match: re.Match[bytes]) -> str | None:
    start, end = match.span()
    if start and (chr(encoded[start - 1]).isalnum() or encoded[start - 1 : start] in (b":", b".")):
        return None  # "fe80::1" read from its middle, "std::..."
    if end < len(encoded) and (chr(encoded[end]).isalnum() or encoded[end : end + 1] in (b":", b".")):
        return None
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


def _iban(encoded: bytes, match: re.Match[bytes]) -> str | None:
    start, end = match.span()
    compact = encoded[start - 2 : end].replace(b" ", b"").decode("ascii", "ignore")
    # The pattern may take a capitalised word after the IBAN along; shorten until valid.
    for length in range(min(len(compact), 34), 14, -1):
        if stdnum_iban.is_valid(compact[:length]):
            return "iban"
    return None


# ---------------------------------------------------------------------------------------
# Street addresses.
#
# Measured on the labelled examples of benchmarks/personal_data.py (--addresses; 62 with an
# address in eight languages, 66 without, including sentences built to trap a regex:
# "Top 10 Things To Do On Main Street", "5 ways to cross the road", "Route 66"):
#   this regex:                 recall 0.94, precision 0.97 (about 2 µs/text on the scan)
#   usaddress 0.5.16 (datamade, CRF; run on every "number + words" window, since it
#   labels tokens of a string it assumes is an address): recall 0.45, precision 0.53,
#   and English only
#   pyap 0.3.1 (US/CA/GB regexes, last release 2020): recall 0.15, precision 1.0; it
#   wants city, state and ZIP after the street, which chat text rarely has
# So the regex, which knows the street types of the arena's main languages.


def _street(encoded: bytes, match: re.Match[bytes]) -> str | None:
    return "street_address"


_STREET_BEFORE_NAME = re.compile(
    rb"(?:^|[^A-Za-z\x80-\xff])"
    rb"(?:Calle|calle|C/|Avenida|avenida|Avda\.?|Av\.|Paseo|paseo|Plaza|plaza|Carrera|Carrer|carrer|Camino|"
    rb"Rua|rua|Travessa|Pra\xc3\xa7a|Alameda|Via|via|Viale|viale|Piazza|piazza|Corso|corso|Largo|Vicolo|"
    rb"ul\.|ulica|Aleja|\xd1\x83\xd0\xbb\.|\xd1\x83\xd0\xbb\xd0\xb8\xd1\x86\xd0\xb0|"  # ul., ulica; ул., улица
    rb"\xd0\xbf\xd1\x80\xd0\xbe\xd1\x81\xd0\xbf\xd0\xb5\xd0\xba\xd1\x82|\xd0\xbf\xd1\x80-\xd1\x82|"  # проспект, пр-т
    rb"\xd0\xbf\xd0\xb5\xd1\x80\.|\xd0\xb1\xd1\x83\xd0\xbb\xd1\x8c\xd0\xb2\xd0\xb0\xd1\x80)"  # пер., бульвар
    rb"\x20+(?:[^\x20,;:\n0-9]+\x20+){0,4}[^\x20,;:\n0-9]+,?\x20"
    rb"(?:(?:\xd0\xb4\.|n\.?\xc2\xba|n\xc2\xb0|no?\.)\x20?)?\Z"  # д. 7, nº 5, no. 5
)


def _after_word(encoded: bytes, match: re.Match[bytes]) -> str | None:
    start = match.start()
    window = encoded[max(0, start - 64) : start]
    return "street_address" if _STREET_BEFORE_NAME.search(window) else None


_HANDLERS = {
    "iban": _iban,
    "number": _number,
    "ipv4": _ipv4,
    "ipv6": _ipv6,
    "street": _street,
    "after_word": _after_word,
}
