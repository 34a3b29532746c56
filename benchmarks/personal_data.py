"""Personal-data check benchmark: releases.personal_data against scrubadub, commonregex and presidio.

    .venv/bin/python benchmarks/personal_data.py                 # 200k texts, peers on 5k of them
    .venv/bin/python benchmarks/personal_data.py --texts 50000 --peer-sample 2000 --no-peers

A release of a million battles (about four texts each) must be built in under a minute,
database read and file writing included, so find_personal_data gets roughly 15-20 s for
4M texts: about 4-5 µs a text. This script generates seeded synthetic texts of 200 to
3,000 characters in the mixes a chat arena sees (English prose with years, counts, prices
and dates; German, French, Spanish, Russian, Chinese and Japanese prose; code with version
pins, loopback and private IPs, timestamps, hashes, UUIDs, MAC addresses, "std::",
decorators and example.com addresses; math with long numbers and decimals; markdown
tables), then plants one piece of personal data of a known kind in a tenth of them. It
prints, for ours:

* µs per text for clean and for dirty texts (one call of find_personal_data per text),
  overall and by kind of text, and what that means for 4M texts;
* how many dirty texts were caught, and with the planted reason, per kind of finding;
* how many clean texts were flagged (false positives), per kind of text, with examples.

Then the peers, on the same sample of the texts, in one run: scrubadub 2.0.1 (its
e-mail, phone and credit-card detectors; the URL, Twitter and credential ones flag things
that are not personal data here), commonregex 1.5.4 (its e-mail, phone, card, IPv4, IPv6
and street patterns) and presidio-analyzer's pattern recognizers (e-mail, card, IP, phone,
IBAN; no NLP engine, so no model to download). µs per text, ratio to ours, caught and
false-positive counts. The peers live in a throwaway virtualenv (PII_PEERS_VENV, default
pii-peers in the system's temporary directory), created with pip on first use and never a
dependency of the project; the script says so when a peer cannot be installed.

`--addresses` (on by default) measures street-address detection alone on labelled
sentences, ours against usaddress 0.5.16 (datamade's CRF parser, run on every "number +
following words" window because it tags a string it assumes is an address), pyap 0.3.1
(US/CA/GB address regexes, last release 2020) and commonregex's street pattern: the
figures quoted in releases/personal_data.py.

The corpus is ours, written next to the detector, so its catch rate flatters us; the
timing is what this script is for. The worker mode (--worker) is internal: the script calls
itself with it under the peers' interpreter.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS_VENV = Path(os.environ.get("PII_PEERS_VENV", Path(tempfile.gettempdir()) / "pii-peers"))
PEER_PACKAGES = [
    "scrubadub==2.0.1",
    "commonregex==1.5.4",
    "presidio-analyzer==2.2.366",
    "usaddress==0.5.16",
    "pyap==0.3.1",
]
PEERS = ("scrubadub", "commonregex", "presidio")


# ---------------------------------------------------------------------------------------
# The corpus (project interpreter).

FIRST = ["anna", "john", "li", "maria", "omar", "sven", "yuki", "pierre", "olga", "raj", "chloe", "mehmet"]
LAST = ["smith", "mueller", "wang", "garcia", "khan", "larsen", "tanaka", "dubois", "ivanova", "patel", "martin"]
# Filler: ordinary words of each language, for the sentences without numbers that make up
# most of a chat answer.
FILLER = {
    "en": (
        "the of and to in is you that it for on are as with they be this have from or but not what all we when "
        "your can there use each which how their if will other about many then them these so some would make like "
        "into more could people than first been find because function example model answer question data result "
        "important however different approach system value performance language following consider should using "
        "provides between through process information several particular structure understand simple method"
    ).split(),
    "de": "der die das und ist nicht ein eine mit auf für von sich den dem auch als wie noch nach werden bei aber "
    "Ergebnis Beispiel wichtig zwischen verschiedene Lösung Frage Antwort Daten Sprache".split(),
    "fr": "le la les et est dans un une pour pas que qui sur avec plus par ce il elle nous vous sont mais comme "
    "exemple important résultat différentes solution question réponse données langue".split(),
    "es": "el la los las y es en un una para con no que por se su al lo como más pero sus le ya o este "
    "ejemplo importante resultado diferentes solución pregunta respuesta datos idioma".split(),
    "ru": "и в не на я что он с как а то все она так его но да ты к у же вы за бы по только ее мне было вот от "
    "пример важно результат решение вопрос ответ данные язык".split(),
    "zh": list(
        "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经"
    ),
    "ja": list("のにはをたがでてとしれさあるいもなかこうよりまでからすべてそれこれ日本語文章例結果重要問題回答"),
}


def _sentence(rng: random.Random, language: str = "en") -> str:
    words = FILLER[language]
    if language in ("zh", "ja"):
        return "".join(rng.choice(words) for _ in range(rng.randint(12, 40))) + "。"
    text = " ".join(rng.choice(words) for _ in range(rng.randint(8, 24)))
    return text[:1].upper() + text[1:] + "."


NUMERIC_EN = [
    "In {year}, the company grew by {pct}% to {n} employees.",
    "Python {py} added structural pattern matching.",
    "The recipe needs {k} cups of flour, {k} eggs and {k}00 g of sugar.",
    "Chapter {k} covers the years {year}-{year2}.",
    "About {big} people live in the region, up {pct}% since {year}.",
    "It costs ${price} (about €{price}) as of {date}.",
    "Meet me at {time} on {date}, room {k}{k}.",
    "Here are 5 ways to cross the road safely.",
    "Top 10 Things To Do On Main Street this summer.",
    "I run Windows 11 Home on an RTX 4090 with {k}6 GB of RAM.",
    "He ran 42.195 km in 2:03:59, a record since {year}.",
    "Route 66 is {n} miles long.",
    "Version {k}.{k}.{k} fixed {k}{k} bugs reported between {date} and {date}.",
    "Apollo 11 landed on July 20, 1969, and the 3 Musketeers were published in 1844.",
]
NUMERIC_OTHER = {
    "de": ["Im Jahr {year} stieg der Umsatz um {pct} % auf {big_de} Euro.", "Die Sitzung beginnt um {time} Uhr.",
           "Platz {k} ging an das Team aus Berlin, das {k} Spiele gewann."],
    "fr": ["Il y a {big_fr} habitants en {year}.", "Le prix est de {price} € depuis le {date_fr}."],
    "es": ["El {date_fr} llegaron {n} personas; la entrada cuesta {price} euros.", "Hay {k} calles cerradas."],
    "ru": ["В {year} году было {big_fr} человек, рост на {pct} %.", "У меня {k} кошки."],
    "zh": ["{year}年{k}月{k}日，我们有{k}个选项，价格是{price}元。", "10月{k}号开会。"],
    "ja": ["{year}年{k}月{k}日に{k}人が参加しました。価格は{n}円です。"],
}  # fmt: skip


def _prose_en(rng: random.Random) -> str:
    """An English answer: paragraphs, a numbered list, a heading; numbers in one sentence of four."""
    parts = []
    for _ in range(rng.randint(2, 5)):
        sentences = [
            _fill(rng, rng.choice(NUMERIC_EN)) if rng.random() < 0.25 else _sentence(rng)
            for _ in range(rng.randint(2, 5))
        ]
        parts.append(" ".join(sentences))
    if rng.random() < 0.5:
        parts.append("## " + _sentence(rng)[:40])
        parts.append(
            "\n".join(f"{i}. **{_sentence(rng)[:20]}**: {_sentence(rng)}" for i in range(1, rng.randint(3, 7)))
        )
    return "\n\n".join(parts)


def _prose_other(rng: random.Random) -> str:
    language = rng.choice(list(NUMERIC_OTHER))
    sentences = [
        _fill(rng, rng.choice(NUMERIC_OTHER[language])) if rng.random() < 0.25 else _sentence(rng, language)
        for _ in range(rng.randint(4, 12))
    ]
    return ("" if language in ("zh", "ja") else " ").join(sentences)


CODE = [
    "```python\nimport requests  # requests==2.31.0\n\n"
    "resp = requests.get('http://127.0.0.1:{port}/api/v1/items', timeout=10)\n"
    "for item in resp.json()[:{k}]:\n    print(item['id'], item['name'])\n```",
    "```\npip install numpy=={k}.26.{k} torch>={k}.1.0 some-lib==1.2.3.4\n```",
    "```python\napp.run(host='0.0.0.0', port={port}, debug=True)\nDB_HOST = '192.168.{k}.{k}{k}'\n"
    "REDIS_URL = 'redis://10.0.{k}.{k}:6379/0'\n```",
    "```python\ntimestamp = {ts}\nMAX_INT = 2147483647\nMASK = 0xFFFFFFFF  # 4294967295\nrequest_id = {uuid}\n```",
    "```python\n@app.route('/api/v1/users/<int:user_id>')\ndef get_user(user_id):\n"
    "    user = db.get(User, user_id)\n    return jsonify(id=user.id, name=user.name)\n```",
    "```cpp\nstd::vector<int> v{{{k}, {k}, {k}}};\nfor (size_t i = 0; i < v.size(); ++i) {{\n"
    "    std::cout << v[i] << std::endl;\n}}\n```",
    "```js\n// npm install react@18.2.0 lodash@4.17.21\n"
    'const logo = \'<img src="logo@2x.png" width="{n}">\';\nsetTimeout(() => refresh(), {n});\n```',
    "```python\nmac = '00:1A:2B:3C:4D:5E'\ncommit = '{hex}'\nstarted = datetime({year}, {k}, {k}, 12, 30, 45)\n```",
    "```bash\ngit clone git@github.com:user/repo.git\nexport EMAIL='user@example.com'\n"
    "export SMTP_USER='your.email@gmail.com'\n```",
    "```python\npi = 3.14159265358979\nbig = 12345678901234567890\nms = {ts}123\nlearning_rate = 0.000{k}\n```",
    "```python\nphone_re = re.compile(r'\\d{{3}}-\\d{{3}}-\\d{{4}}')\nIPV6_DOC = '2001:db8::{k}'\n"
    "LINK_LOCAL = 'fe80::{k}'\n```",
    "```sql\nSELECT id, total FROM orders WHERE created_at > '{date}' AND total > {price} LIMIT 100;\n```",
    "```python\ndef fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n"
    "print(fib({k}0))  # {n}\n```",
    '```yaml\nservices:\n  web:\n    image: nginx:1.25.3\n    ports:\n      - "{port}:80"\n'
    "    environment:\n      - WORKERS={k}\n```",
]


def _code(rng: random.Random) -> str:
    parts = [_sentence(rng)]
    for _ in range(rng.randint(1, 3)):
        parts.append(_fill(rng, rng.choice(CODE)))
        parts.append(" ".join(_sentence(rng) for _ in range(rng.randint(1, 3))))
    return "\n\n".join(parts)


MATH = [
    "Compute {n}{k}{k} + {n}{k}{k}: the sum is large.",
    "Let x = 3.14159 and y = {pct}.{n}; then x*y is about {n}.{k}.",
    "The 40th Fibonacci number is 102334155 and 2^31 - 1 = 2147483647.",
    "The matrix [[{k}, {k}], [{k}, {k}]] has determinant -{k}.",
    "One million is written 1 000 000 or 1,000,000; a billion is 1 000 000 000.",
    "The probability is 0.000{k}{k}, i.e. 1 in {n}{n}.",
    "The sum 1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10 is 55.",
    "See ISBN 978-3-16-148410-0 and ISBN 0-306-40615-2 for the proofs.",
    "Between 1990-2000 and 2019/2020 the index rose from {n} to {n}{k}.",
    "$$\\int_0^{k} x^2 \\, dx = \\frac{{{k}^3}}{{3}}$$",
]


def _math(rng: random.Random) -> str:
    return " ".join(
        _fill(rng, rng.choice(MATH)) if rng.random() < 0.5 else _sentence(rng) for _ in range(rng.randint(4, 10))
    )


def _table(rng: random.Random) -> str:
    rows = "\n".join(_fill(rng, "| {date} | ${price} | {pct}% | {n} |") for _ in range(rng.randint(3, 12)))
    return (
        _sentence(rng) + "\n\n| Date | Revenue | Growth | Units |\n|---|---|---|---|\n" + rows + "\n\n" + _sentence(rng)
    )


KINDS = {"prose": _prose_en, "other languages": _prose_other, "code": _code, "math": _math, "markdown table": _table}
KIND_WEIGHTS = {"prose": 0.45, "other languages": 0.2, "code": 0.2, "math": 0.08, "markdown table": 0.07}


def _fill(rng: random.Random, template: str) -> str:
    values = {
        "year": rng.randint(1950, 2025),
        "year2": rng.randint(1950, 2025),
        "pct": rng.randint(1, 99),
        "n": rng.randint(10, 99999),
        "k": rng.randint(1, 9),
        "py": f"3.{rng.randint(6, 13)}",
        "big": f"{rng.randint(1, 999):,}",
        "big_de": f"{rng.randint(1, 999)}.{rng.randint(0, 999):03d}.{rng.randint(0, 999):03d}",
        "big_fr": f"{rng.randint(1, 999)} {rng.randint(0, 999):03d} 000",
        "price": f"{rng.randint(1, 9999)}.{rng.randint(0, 99):02d}",
        "date": f"{rng.randint(2000, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "date_fr": f"{rng.randint(1, 28)}/{rng.randint(1, 12):02d}/{rng.randint(2000, 2025)}",
        "time": f"{rng.randint(0, 23)}:{rng.randint(0, 59):02d}",
        "port": rng.choice([80, 443, 3000, 5000, 8000, 8080, 8443]),
        "ts": rng.randint(1_500_000_000, 1_800_000_000),
        "uuid": f"'{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-4{rng.getrandbits(12):03x}"
        f"-a{rng.getrandbits(12):03x}-{rng.getrandbits(48):012x}'",
        "hex": f"{rng.getrandbits(160):040x}",
    }
    return template.format(**values)


def clean_text(rng: random.Random) -> tuple[str, str]:
    kind = rng.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()))[0]
    target = int(min(3000, max(200, rng.lognormvariate(6.7, 0.6))))  # median ~800 characters
    parts: list[str] = []
    length = 0
    while length < target:
        part = KINDS[kind](rng)
        parts.append(part)
        length += len(part) + 2
    return kind, "\n\n".join(parts)[: max(target, 200)]


def _luhn_complete(rng: random.Random, prefix: str, length: int) -> str:
    from stdnum import luhn

    body = prefix + "".join(str(rng.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    return body + luhn.calc_check_digit(body)


def _valid_phone(rng: random.Random, region: str) -> object:
    import phonenumbers

    kind = rng.choice([phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE])
    example = phonenumbers.example_number_for_type(region, kind)
    for _ in range(50):  # vary the last digits while the number stays valid
        digits = list(str(example.national_number))
        first = 3 if example.country_code == 1 else max(3, len(digits) - 4)  # NANP: the exchange too
        for i in range(first, len(digits)):
            digits[i] = str(rng.randint(0, 9))
        number = phonenumbers.PhoneNumber(
            country_code=example.country_code,
            national_number=int("".join(digits)),
            italian_leading_zero=example.italian_leading_zero,
            number_of_leading_zeros=example.number_of_leading_zeros,
        )
        if phonenumbers.is_valid_number(number) and not (
            number.country_code == 1 and "555" in (str(number.national_number)[:3], str(number.national_number)[3:6])
        ):  # NANP 555 numbers are placeholders, by the detector's rule
            return number
    return example


def personal_item(rng: random.Random, reason: str) -> str:
    import phonenumbers

    if reason == "email":
        domain = rng.choice(["gmail.com", "yahoo.co.uk", "web.de", "qq.com", "uni-heidelberg.de", "acme-corp.com"])
        address = f"{rng.choice(FIRST)}.{rng.choice(LAST)}{rng.randint(1, 99)}@{domain}"
        return rng.choice(["write to {a}", "[mail me](mailto:{a})", "<{a}>", "contact: {a}.", "邮箱：{a}"]).format(
            a=address
        )
    if reason == "phone":
        region = rng.choice(["US", "GB", "DE", "FR", "IN", "CN", "ES", "IT", "BR", "RU", "JP", "AU"])
        number = _valid_phone(rng, region)
        style = rng.random()
        if style < 0.35:
            text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        elif style < 0.8:
            text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        else:
            text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        lead = rng.choice(["call me at ", "my number is ", "Tel.: ", "", "phone: ", "WhatsApp "])
        return lead + text
    if reason == "payment_card":
        prefix, length = rng.choice(
            [("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15), ("6011", 16)]
        )
        number = _luhn_complete(rng, prefix, length)
        separator = rng.choice([" ", "-", ""])
        groups = (
            [number[i : i + 4] for i in range(0, len(number), 4)]
            if length == 16
            else [number[:4], number[4:10], number[10:]]
        )
        return f"my card is {separator.join(groups)} exp {rng.randint(1, 12):02d}/{rng.randint(25, 30)}"
    if reason == "ip_address":
        while True:
            address = ".".join(str(rng.randint(1, 223)) for _ in range(4))
            if ipaddress.IPv4Address(address).is_global:
                break
        if rng.random() < 0.2:
            hextets = (rng.getrandbits(16), rng.getrandbits(16), rng.getrandbits(16))
            address = f"2a0{rng.randint(0, 15):x}:{hextets[0]:x}:{hextets[1]:x}::{hextets[2]:x}"
        return rng.choice(["ssh root@{a}", "my server is at {a}.", "curl http://{a}/", "ping {a}", "[{a}]:443"]).format(
            a=address
        )
    if reason == "street_address":
        return rng.choice(ADDRESS_TEMPLATES).format(
            n=rng.randint(1, 2500), m=rng.randint(1, 99), z=rng.randint(10000, 99999)
        )
    if reason == "iban":
        from stdnum import iban

        # Spain's and Belgium's BBANs carry national check digits a random one fails.
        country, length = rng.choice([("DE", 18), ("FR", 23), ("AT", 16), ("IT", 23), ("NL", 14), ("PL", 24)])
        if country == "NL":
            bban = "ABNA" + "".join(str(rng.randint(0, 9)) for _ in range(10))
        elif country == "IT":
            bban = "X" + "".join(str(rng.randint(0, 9)) for _ in range(22))
        else:
            bban = "".join(str(rng.randint(0, 9)) for _ in range(length))
        number = country + iban.calc_check_digits(country + "00" + bban) + bban
        if rng.random() < 0.5:
            number = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
        return f"IBAN: {number}"
    raise ValueError(reason)


ADDRESS_TEMPLATES = [
    "I live at {n} Main Street, Springfield.",
    "Send it to {n} Oak Ave, Apt {m}.",
    "Our office: {n} North Lake Shore Drive, Chicago",
    "deliver to {n} elm st please",
    "Meine Adresse: Hauptstraße {m}, {z} Berlin",
    "Wir wohnen in der Goethestr. {m}a.",
    "J'habite au {m} rue de la République, {z} Lyon.",
    "Vivo en Calle Mayor {m}, Madrid.",
    "Abito in Via Roma {m}, Milano.",
    "Moro na Rua Augusta, {n}, São Paulo.",
    "我住在北京市朝阳区建国路{m}号。",
    "Адрес: ул. Тверская, д. {m}, Москва.",
]

REASONS_PLANTED = ("email", "phone", "payment_card", "ip_address", "street_address", "iban")


def build_corpus(count: int, dirty_share: float, seed: int) -> list[dict]:
    rng = random.Random(seed)
    corpus = []
    for _ in range(count):
        kind, text = clean_text(rng)
        item = {"kind": kind, "text": text, "reason": None}
        if rng.random() < dirty_share:
            reason = rng.choice(REASONS_PLANTED)
            at = rng.randint(0, len(text))
            at = text.rfind(" ", 0, at) + 1 if " " in text[:at] else 0
            planted = personal_item(rng, reason)
            item["text"] = text[:at] + planted + " " + text[at:]
            item["reason"] = reason
            item["planted"] = planted
        corpus.append(item)
    return corpus


# ---------------------------------------------------------------------------------------
# Labelled street-address sentences (positives in eight languages; negatives built to trap
# a "number + words + street type" pattern).

ADDRESS_POSITIVES = [
    "I live at 123 Main Street.",
    "Ship it to 1600 Pennsylvania Avenue NW, Washington, DC 20500",
    "Sherlock lived at 221B Baker Street, London.",
    "The store is at 350 Fifth Ave, New York.",
    "Number 10 Downing St, London SW1A 2AA",
    "Apple was at 1 Infinite Loop, Cupertino, CA 95014",
    "She lives at 4059 Mt Lee Dr. Hollywood",
    "Our office: 77 Massachusetts Ave, Cambridge",
    "Meet at 500 W 2nd St, Austin",
    "They moved to 12 Oak Lane last year.",
    "The party is at 8 Sunset Boulevard.",
    "Send it to 1234 N. Lake Shore Drive, Chicago",
    "my address is 742 Evergreen Terrace springfield",
    "deliver to 55 water street apt 4b",
    "I'm at 42 elm st",
    "Write to P.O. Box 1234, Anchorage",
    "My home: 17 Cherry Tree Close, Leeds",
    "Visit us at 350 Broadway, New York",
    "Our HQ is at 1 Hacker Way, Menlo Park",
    "She lives at 90 Bedford Street.",
    "Mail: 2300 Oak Grove Rd., Walnut Creek, CA",
    "1800 Ellis St, San Francisco, CA 94115",
    "Meine Adresse ist Hauptstraße 5, 10115 Berlin.",
    "Wir wohnen in der Friedrichstr. 123.",
    "Büro: Berliner Straße 12a, Frankfurt",
    "Schillerweg 4, 70173 Stuttgart",
    "Er wohnt am Marienplatz 8 in München.",
    "Lieferadresse: Goethestrasse 17, Zürich",
    "Kurfürstendamm 21, Berlin",
    "J'habite au 12 rue de la Paix, 75002 Paris.",
    "Notre bureau : 5, avenue Anatole France, Paris",
    "Adresse : 14 bis rue des Lilas, Lyon",
    "Rendez-vous au 3 boulevard Saint-Michel.",
    "Livraison au 7 place de la Concorde",
    "Il habite 25 chemin des Vignes, Nîmes",
    "Vivo en Calle Mayor 5, Madrid.",
    "La oficina está en Avenida de la Constitución 20, Sevilla.",
    "Mi dirección: Paseo de Gracia 43, Barcelona",
    "Estamos en Calle de Alcalá 20, 28014 Madrid",
    "Abito in Via Roma 10, Milano.",
    "L'ufficio è in Piazza Navona 45, Roma.",
    "Corso Italia 3, Firenze",
    "Moro na Rua Augusta 123, São Paulo.",
    "Endereço: Avenida Paulista, 1578 - Bela Vista",
    "Kantoor: Kalverstraat 92, Amsterdam",
    "We wonen aan de Prinsengracht 263.",
    "Adressen är Drottninggatan 3, Stockholm",
    "我住在北京市朝阳区建国路88号。",
    "公司地址：上海市南京东路100号",
    "東京都千代田区千代田1丁目1番地",
    "住所は大阪市北区梅田3丁目です",
    "Адрес: ул. Тверская, д. 7, Москва",
    "Живу на улице Ленина, 5.",
    "Biuro: ul. Marszałkowska 10, Warszawa",
    "서울특별시 종로구 세종대로 175",
    "I stay at 77 Sunset Blvd, Los Angeles",
    "Office: 1 Market St, San Francisco",
    "He works at 200 Park Avenue.",
    "Shipping address: 3 Abbey Road, London",
    "The bakery is at 66 Rue Saint-Honoré",
    "Contact us at 10 Hudson Yards, New York",
    "Residence: 15 Queen's Gardens, London",
]
ADDRESS_NEGATIVES = [
    "Here are 5 ways to cross the road safely.",
    "Top 10 Things To Do On Main Street this summer.",
    "Route 66 runs from Chicago to Santa Monica.",
    "I have 2 hard drives and 1 SSD.",
    "The 3 Musketeers is a novel.",
    "In 2023 the market grew by 5%.",
    "Step 1: Drive to the store.",
    "Python 3.11 is faster.",
    "There are 12 months in a year.",
    "He scored 3 goals on the pitch.",
    "Windows 11 Home costs $139.",
    "Chapter 12 covers the French Revolution.",
    "We walked 5 miles down the road.",
    "The street had 3 lanes.",
    "Main Street is closed today.",
    "Take the 2nd street on the left.",
    "She bought 2 tickets for Park Avenue the musical.",
    "5 Facts About St. Louis",
    "3 Tips From Dr. Oz",
    "The 101 freeway was jammed.",
    "Apollo 11 landed in 1969.",
    "Die Straße war 5 km lang.",
    "Er belegte Platz 2 im Rennen.",
    "Wir haben 3 Wege gefunden.",
    "Il y a 2 rues à traverser.",
    "Le boulevard fait 3 km.",
    "Hay 4 calles cerradas.",
    "La via è lunga 10 km.",
    "在第3条路上左转。",
    "我们有5个选项。",
    "The gate 5 is at the end of the hall.",
    "Ring 3 of the circus.",
    "Version 2 Lane detection works.",
    "Run 4 laps around the track.",
    "I read 20 pages of The Road by McCarthy.",
    "The 405 is the busiest highway.",
    "We need 3 Court rulings to proceed.",
    "Highway 1 follows the coast.",
    "Flight 370 disappeared in 2014.",
    "Use port 8080 on the server.",
    "My score was 1600 on the SAT.",
    "The tram number 9 goes downtown.",
    "Buy 2 get 1 free at the store on the corner.",
    "Line 42 of main.py raises an error.",
    "The ratio is 3:2 for the drive train.",
    "Chapter 7 Street Photography Basics",
    "7 Avenue Q songs ranked",
    "It has 4 Way stop signs.",
    "The hotel has 250 rooms on 12 floors.",
    "Page 5 of the Street Fighter manual.",
    "They live on the 3rd floor.",
    "We met at Starbucks on Oak Street.",
    "Call me on Sunday at 5.",
    "Ich wohne in Berlin seit 2010.",
    "J'ai 3 enfants.",
    "Tengo 2 perros.",
    "Ho 30 anni.",
    "Eu tenho 25 anos.",
    "У меня 3 кошки.",
    "我今年25岁。",
    "私は3人兄弟です。",
    "저는 서울에 삽니다.",
    "The 5th Avenue store opened.",
    "Section 4 Road Safety rules",
    "5 Main Points of the speech",
    "10 Best Places to visit",
]


# ---------------------------------------------------------------------------------------
# Peers (the peers' interpreter; imports stay inside).


def peer_detector(name: str):
    if name == "scrubadub":
        import scrubadub
        from scrubadub.detectors import CreditCardDetector, EmailDetector, PhoneDetector

        scrubber = scrubadub.Scrubber(detector_list=[EmailDetector, PhoneDetector, CreditCardDetector])
        return lambda text: next(iter(scrubber.iter_filth(text)), None) is not None
    if name == "commonregex":
        import commonregex

        patterns = [
            commonregex.email,
            commonregex.phone,
            commonregex.credit_card,
            commonregex.ip,
            commonregex.ipv6,
            commonregex.street_address,
        ]
        return lambda text: any(pattern.search(text) for pattern in patterns)
    if name == "presidio":
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer,
            EmailRecognizer,
            IbanRecognizer,
            IpRecognizer,
            PhoneRecognizer,
        )

        recognizers = [EmailRecognizer(), CreditCardRecognizer(), IpRecognizer(), PhoneRecognizer(), IbanRecognizer()]

        def detect(text: str) -> bool:
            return any(r.analyze(text, entities=r.supported_entities, nlp_artifacts=None) for r in recognizers)

        return detect
    if name == "pyap":
        import pyap

        return lambda text: any(pyap.parse(text, country=country) for country in ("US", "CA", "GB"))
    if name == "usaddress":
        import re

        import usaddress

        numbers = re.compile(r"\b\d{1,6}[A-Za-z]?\b")

        def detect(text: str) -> bool:
            for match in numbers.finditer(text):
                window = " ".join(text[match.start() :].split()[:7])
                try:
                    parsed, kind = usaddress.tag(window)
                except usaddress.RepeatedLabelError:
                    continue
                if (
                    kind == "Street Address"
                    and "StreetName" in parsed
                    and ("StreetNamePostType" in parsed or "StreetNamePreType" in parsed)
                ):
                    return True
            return False

        return detect
    if name == "commonregex-street":
        import commonregex

        return lambda text: commonregex.street_address.search(text) is not None
    raise ValueError(name)


def worker(name: str, data: Path, out: Path) -> None:
    import logging

    logging.disable(logging.CRITICAL)  # tldextract's failed download of the suffix list (no network here)
    texts = json.loads(data.read_text())
    detect = peer_detector(name)
    detect("warm-up: call +1 212-736-5000")
    start = time.process_time()
    flags = [bool(detect(text)) for text in texts]
    seconds = time.process_time() - start
    out.write_text(json.dumps({"seconds": seconds, "flags": flags}))


# ---------------------------------------------------------------------------------------
# Orchestration (project interpreter).


def peers_python() -> tuple[Path | None, str]:
    python = PEERS_VENV / "bin" / "python"
    marker = PEERS_VENV / ".pii-peers-installed"
    wanted = " ".join(PEER_PACKAGES)
    if marker.exists() and marker.read_text() == wanted:
        return python, ""
    print(f"creating the throwaway peers' environment {PEERS_VENV} ({wanted})", file=sys.stderr, flush=True)
    try:
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(PEERS_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PEER_PACKAGES],
            check=True,
            timeout=900,
        )
    except (subprocess.SubprocessError, OSError) as error:
        return None, f"the peers could not be installed into {PEERS_VENV}: {error}"
    marker.write_text(wanted)
    return python, ""


def run_peer(python: Path, name: str, texts: list[str], timeout: float) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        data, out = Path(directory) / "texts.json", Path(directory) / "out.json"
        data.write_text(json.dumps(texts))
        command = [str(python), str(Path(__file__).resolve()), "--worker", name, "--data", str(data), "--out", str(out)]
        try:
            completed = subprocess.run(command, timeout=timeout, capture_output=True, text=True)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
        if completed.returncode != 0:
            last = (completed.stderr.strip().splitlines() or ["?"])[-1]
            return {"error": f"exited with status {completed.returncode}: {last}"}
        return json.loads(out.read_text())


def time_ours(texts: list[str]) -> tuple[float, list[str | None]]:
    from releases.personal_data import find_personal_data

    # Warm up: RE2 builds its DFA states lazily, phonenumbers loads metadata on first use.
    for text in texts[:1000]:
        find_personal_data((text,))
    results: list[str | None] = []
    append = results.append
    start = time.process_time()
    for text in texts:
        append(find_personal_data((text,)))
    return time.process_time() - start, results


def report_ours(corpus: list[dict]) -> list[str | None]:
    texts = [item["text"] for item in corpus]
    seconds, found = time_ours(texts)
    per_text = defaultdict(list)
    for item, text in zip(corpus, texts, strict=True):
        per_text[item["reason"] is not None].append(len(text))
    clean = [i for i, item in enumerate(corpus) if item["reason"] is None]
    dirty = [i for i, item in enumerate(corpus) if item["reason"] is not None]
    # Time clean and dirty texts apart, each in its own pass.
    clean_seconds, _ = time_ours([texts[i] for i in clean])
    dirty_seconds, _ = time_ours([texts[i] for i in dirty])
    by_kind = {}
    for kind in KIND_WEIGHTS:
        subset = [texts[i] for i in clean if corpus[i]["kind"] == kind]
        if subset:
            by_kind[kind] = (len(subset), time_ours(subset)[0] / len(subset) * 1e6, sum(map(len, subset)) / len(subset))
    mean_length = sum(map(len, texts)) / len(texts)
    print(f"\n== ours: releases.personal_data, {len(texts):,} texts, mean {mean_length:,.0f} characters")
    print(f"all texts    {seconds / len(texts) * 1e6:7.2f} µs/text  ({seconds:.2f} s)")
    print(f"clean texts  {clean_seconds / len(clean) * 1e6:7.2f} µs/text  ({len(clean):,} texts)")
    print(f"dirty texts  {dirty_seconds / len(dirty) * 1e6:7.2f} µs/text  ({len(dirty):,} texts)")
    for kind, (count, micros, length) in by_kind.items():
        print(f"  clean {kind:16} {micros:7.2f} µs/text  ({count:,} texts, mean {length:,.0f} characters)")
    print(f"=> 1M battles x 4 texts at this mix: {seconds / len(texts) * 4e6:.1f} s")

    caught, right = Counter(), Counter()
    planted = Counter(item["reason"] for item in corpus if item["reason"])
    false_positive = Counter()
    examples: dict[str, list[str]] = defaultdict(list)
    for item, reason in zip(corpus, found, strict=True):
        if item["reason"]:
            caught[item["reason"]] += reason is not None
            right[item["reason"]] += reason == item["reason"]
        elif reason:
            false_positive[item["kind"]] += 1
            if len(examples[reason]) < 2:
                examples[reason].append(item["text"][:160].replace("\n", " "))
    print("\nplanted         caught  with that reason")
    for reason in REASONS_PLANTED:
        print(f"  {reason:14} {caught[reason]:5}/{planted[reason]:<5} {right[reason]:5}")
    kinds = Counter(item["kind"] for item in corpus if item["reason"] is None)
    print("clean texts flagged (false positives): " + ", ".join(f"{k} {false_positive[k]}/{kinds[k]}" for k in kinds))
    for reason, texts_ in examples.items():
        for text in texts_:
            print(f"  e.g. {reason}: {text!r}")
    return found


def report_peers(corpus: list[dict], sample: int, timeout: float, seed: int) -> None:
    rng = random.Random(seed + 1)
    chosen = rng.sample(range(len(corpus)), min(sample, len(corpus)))
    texts = [corpus[i]["text"] for i in chosen]
    dirty = [corpus[i]["reason"] is not None for i in chosen]
    our_seconds, our_found = time_ours(texts)
    ours = our_seconds / len(texts) * 1e6
    print(f"\n== peers, on the same {len(texts):,} texts ({sum(dirty):,} dirty)")
    print(f"{'detector':34} {'µs/text':>9} {'vs ours':>8} {'caught':>12} {'clean flagged':>14}")

    def line(name: str, micros: float, flags: list[bool]) -> None:
        caught = sum(f for f, d in zip(flags, dirty, strict=True) if d)
        flagged = sum(f for f, d in zip(flags, dirty, strict=True) if not d)
        clean = len(texts) - sum(dirty)
        print(f"{name:34} {micros:9.2f} {micros / ours:7.1f}x {caught:5}/{sum(dirty):<6} {flagged:6}/{clean:<7}")

    line("ours", ours, [f is not None for f in our_found])
    python, problem = peers_python()
    if python is None:
        print(f"(no peer comparison: {problem})")
        return
    labels = {
        "scrubadub": "scrubadub 2.0.1 (email/phone/card)",
        "commonregex": "commonregex 1.5.4 (6 patterns)",
        "presidio": "presidio 2.2.366 pattern recognizers",
    }
    for name in PEERS:
        result = run_peer(python, name, texts, timeout)
        if "error" in result:
            print(f"{labels[name]:34} not measured: {result['error']}")
            continue
        line(labels[name], result["seconds"] / len(texts) * 1e6, result["flags"])


def report_addresses(timeout: float, with_peers: bool) -> None:
    from releases.personal_data import find_personal_data

    texts = ADDRESS_POSITIVES + ADDRESS_NEGATIVES
    truth = [True] * len(ADDRESS_POSITIVES) + [False] * len(ADDRESS_NEGATIVES)
    print(f"\n== street addresses: {len(ADDRESS_POSITIVES)} sentences with one, {len(ADDRESS_NEGATIVES)} without")
    print(f"{'detector':34} {'recall':>7} {'precision':>10}")

    def line(name: str, flags: list[bool]) -> None:
        tp = sum(f and t for f, t in zip(flags, truth, strict=True))
        fp = sum(f and not t for f, t in zip(flags, truth, strict=True))
        recall = tp / sum(truth)
        precision = tp / (tp + fp) if tp + fp else float("nan")
        print(f"{name:34} {recall:7.2f} {precision:10.2f}   ({tp} found, {fp} wrong)")

    ours = [find_personal_data([t]) == "street_address" for t in texts]
    line("ours (regex)", ours)
    for text, flag, real in zip(texts, ours, truth, strict=True):
        if flag != real:
            print(f"  ours {'missed' if real else 'flagged'}: {text!r}")
    if not with_peers:
        return
    python, problem = peers_python()
    if python is None:
        print(f"(no peer comparison: {problem})")
        return
    for name, label in (
        ("usaddress", "usaddress 0.5.16 (on windows)"),
        ("pyap", "pyap 0.3.1 (US, CA, GB)"),
        ("commonregex-street", "commonregex 1.5.4 street pattern"),
    ):
        result = run_peer(python, name, texts, timeout)
        if "error" in result:
            print(f"{label:34} not measured: {result['error']}")
        else:
            line(label, result["flags"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=200_000)
    parser.add_argument("--dirty-share", type=float, default=0.1)
    parser.add_argument("--peer-sample", type=int, default=5_000, help="texts given to each peer (they are slow)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per peer run")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--no-addresses", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.out)
        return
    sys.path.insert(0, str(ROOT))
    started = time.process_time()
    corpus = build_corpus(args.texts, args.dirty_share, args.seed)
    print(f"corpus: {len(corpus):,} texts built in {time.process_time() - started:.1f} s (seed {args.seed})")
    report_ours(corpus)
    if not args.no_peers:
        report_peers(corpus, args.peer_sample, args.timeout, args.seed)
    if not args.no_addresses:
        report_addresses(args.timeout, not args.no_peers)


if __name__ == "__main__":
    main()
