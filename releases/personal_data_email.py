"""E-mail addresses in a text, as releases.personal_data checks them: written plainly, with a
spaced or a full-width "@", or spelled out ("jane dot roe at gmail dot com").

A regex reads the syntax only; email-validator checks one address at a time and would add
nothing but cost. The search starts at "@", a literal, so texts without an address pay
next to nothing. What is let through is what names no one: reserved example domains,
placeholders of code samples, service accounts, image assets ("icon@2x.png").
"""

from __future__ import annotations

import re

import phonenumbers

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


def has_email(text: str) -> bool:
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
WIDE_AT = str.maketrans({"\uff20": "@", "\ufe6b": "@", "\uff0e": ".", "\u3002": "."})

# "jane.smith [at] uni-heidelberg [dot] de", "jane(at)example.org": checked only when the
# candidate pass saw an "[at]" or "(at)" (personal_data._OBFUSCATED).
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


def has_obfuscated_email(text: str) -> bool:
    if _OBFUSCATED_EMAIL.search(text):
        return True
    for match in _SPELLED_EMAIL.finditer(text):
        local, first, rest, tld = match.groups()
        if first.lower() in _SENTENCE_WORDS or tld.lower() not in _TLDS:
            continue
        address = _SPELLED_DOT.sub(".", f"{local}@{first}{rest}.{tld}")
        if has_email(address):  # the same placeholders and reserved domains are let through
            return True
    return False


# Top-level domains a spaced or spelled-out address must end in: the generic ones people
# write addresses with, and every country's (phonenumbers knows the regions; .uk and .eu are
# not among them).
_TLDS = frozenset(
    "com org net edu gov mil int info biz name pro mobi asia tel travel jobs museum coop aero "
    "io co ai app dev me tv cc xyz online site tech email mail cloud shop store blog uk eu".split()
) | frozenset(region.lower() for region in phonenumbers.SUPPORTED_REGIONS)
