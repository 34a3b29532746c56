"""releases.personal_data: what keeps a battle out of a community release, and what does not."""

import pytest
from stdnum import luhn

from releases.personal_data import REASONS, find_personal_data


def card(prefix: str, length: int, fill: str = "7") -> str:
    """A Luhn-valid card number with an issuer's prefix (not one of the published test numbers)."""
    body = (prefix + fill * length)[: length - 1]
    return body + luhn.calc_check_digit(body)


VISA = card("4539", 16)  # 4539777777777779
MASTERCARD = card("5425", 16)
AMEX = card("3714", 15)


def spaced(number: str, groups: tuple[int, ...], separator: str = " ") -> str:
    parts, at = [], 0
    for size in groups:
        parts.append(number[at : at + size])
        at += size
    return separator.join(parts)


def test_it_lists_the_reasons_in_priority_order():
    assert REASONS[:5] == ("email", "phone", "payment_card", "ip_address", "street_address")
    assert len(set(REASONS)) == len(REASONS)


@pytest.mark.parametrize(
    "text",
    [
        "You can reach me at john.smith@gmail.com.",
        "Mail me: li.wei1987@qq.com",
        "[write to me](mailto:anna.mueller@uni-heidelberg.de)",
        "<jane_roe+arena@outlook.co.uk>",
        "Kontakt: müller@beispiel.de bitte",
        "mon adresse est pierre.dubois@orange.fr",
        "邮箱：zhang.san@163.com",
        "jane.smith [at] uni-heidelberg [dot] de",
        "omar (at) gmx.net",
        "12345+octocat@users.noreply.github.com",
    ],
)
def test_it_finds_email_addresses(text):
    assert find_personal_data([text]) == "email"


@pytest.mark.parametrize(
    "text",
    [
        "EMAIL = 'user@example.com'",
        "send it to someone@sub.example.org",
        "admin@test, me@host.invalid, dev@box.localhost",
        "SMTP_USER = 'your.email@gmail.com'",
        "username@company.com is a placeholder",
        "git clone git@github.com:arena/site.git",
        "@app.route('/users/<id>')",
        "npm i @types/node react@18.2.0",
        "<img src='logo@2x.png'>",
        "ssh deploy@192.168.1.20",
        "noreply@github.com sent you a notification",
    ],
)
def test_it_lets_example_placeholder_and_service_addresses_through(text):
    assert find_personal_data([text]) is None


@pytest.mark.parametrize(
    "text",
    [
        "Call me at (212) 736-5000 tomorrow",
        "my number is 212-736-5000",
        "office: 212.736.5000",
        "+1 415 555 2671",
        "+1-212-736-5000",
        "+12127365000",
        "mon numéro : 06 12 34 56 78",
        "portable 06.12.34.56.78",
        "+33 6 12 34 56 78",
        "+33 (0)6 12 34 56 78",
        "Telefon 030 1234567",
        "Handy: 0171 1234567",
        "+49 30 12345678",
        "+49 (0)30 1234567",
        "0049 30 1234567",
        "UK office 020 7946 0123",
        "07911 123456",
        "Tel. 21 27 36 50 00",
        "call me on 2127365000",
        "我的手机13800138000",
        "+86 138 0013 8000",
        "8 916 123 45 67",
        "+7 (916) 123-45-67",
        "+91-9876543210",
        "98765 43210",
        "mi móvil es 612 34 56 78",
        "+34 612 345 678",
        "chiamami al 333 123 4567",
        "(11) 91234-5678",
        "call me on ٠١٧١١٢٣٤٥٦٧",
        "電話は０９０-１２３４-５６７８です",
        "WhatsApp +34 612 34 36 86 000 people",
        "Tel 030 1234567 / Fax 030 7654321",
    ],
)
def test_it_finds_phone_numbers(text):
    assert find_personal_data([text]) == "phone"


@pytest.mark.parametrize(
    "text",
    [
        "Released on 2023-10-15 at 12:30:45",
        "released 15/10/2023 and 15.10.2023",
        "It costs $1,234,567.89",
        "Le prix est de 1 234 567 €",
        "About 250 000 000 people",
        "Der Umsatz stieg auf 598.143.416 Euro",
        "pi = 3.14159265358979",
        "ISBN 978-3-16-148410-0",
        "ISBN 0-306-40615-2",
        "timestamp = 1700000000",
        "ms = 1700000000123",
        "MAX_INT = 2147483647  # 4294967295",
        "The 40th Fibonacci number is 102334155",
        "x = 1234567 + 7654321",
        "1 2 3 4 5 6 7 8 9 10",
        "between 1990-2000 and 2019/2020",
        "(555) 123-4567 is the number from the films",
        "id = 123e4567-e89b-12d3-a456-426614174000",
        "commit 3f786850e387550fdab836ed7e6dc881de23001b",
        "big = 12345678901234567890",
        "toll-free 1-800-123-4567",
    ],
)
def test_it_lets_dates_prices_and_long_numbers_through(text):
    assert find_personal_data([text]) is None


@pytest.mark.parametrize(
    "text",
    [
        f"card {VISA} exp 12/27",
        f"card {spaced(VISA, (4, 4, 4, 4))} exp 12/27",
        f"card {spaced(VISA, (4, 4, 4, 4), '-')}",
        f"MC {spaced(MASTERCARD, (4, 4, 4, 4))}",
        f"Amex {spaced(AMEX, (4, 6, 5))}",
        f"ref 12 {spaced(VISA, (4, 4, 4, 4))}",
        f"2021-02-08 {spaced(VISA, (4, 4, 4, 4), '-')}",
    ],
)
def test_it_finds_payment_cards(text):
    assert find_personal_data([text]) == "payment_card"


@pytest.mark.parametrize(
    "text",
    [
        "card 4539 7777 7777 7778",  # fails Luhn
        "4242 4242 4242 4242 is Stripe's test card",
        "test with 4111-1111-1111-1111",
        "9780306406157 is not a card",
        "order 7777777777777777 shipped",  # 7: no card issuer
        "ts 1700000000123 ms",
    ],
)
def test_it_lets_test_cards_and_numbers_that_are_no_card_through(text):
    assert find_personal_data([text]) is None


@pytest.mark.parametrize(
    "text",
    [
        "the server is at 8.8.8.8.",
        "ssh root@203.0.114.5",
        "curl http://93.184.216.34/index.html",
        "ping 1.1.1.1 and see",
        "my ip: 123.45.67.89",
        "[2a00:1450:4001:82a::200e]:443",
        "2606:4700:4700::1111",
        "2001:4860:4860:0:0:0:0:8888",
    ],
)
def test_it_finds_public_ip_addresses(text):
    assert find_personal_data([text]) == "ip_address"


@pytest.mark.parametrize(
    "text",
    [
        "pip install numpy==1.2.3.4",
        "upgrade to version 1.2.3.4",
        "v1.2.3.4 is out",
        "DB_HOST = '192.168.1.1'; REDIS = '10.0.0.1'",
        "bind 0.0.0.0 and 127.0.0.1:8000",
        "netmask 255.255.255.0",
        "docs use 192.0.2.1 and 203.0.113.7",
        "OID 1.3.6.1.4.1",
        "std::vector<int> v; a::b",
        "2001:db8::1 is for documentation",
        "fe80::1 and ::1",
        "MAC 00:1A:2B:3C:4D:5E at 12:30:45",
    ],
)
def test_it_lets_versions_private_and_documentation_addresses_through(text):
    assert find_personal_data([text]) is None


@pytest.mark.parametrize(
    "text",
    [
        "I live at 123 Main Street.",
        "Ship it to 1600 Pennsylvania Avenue NW, Washington",
        "Sherlock lived at 221B Baker Street.",
        "The store is at 350 Fifth Ave.",
        "10 Downing St, London",
        "deliver to 42 elm st please",
        "Visit us at 350 Broadway",
        "Write to P.O. Box 1234, Anchorage",
        "Meine Adresse ist Hauptstraße 5, 10115 Berlin.",
        "Wir wohnen in der Friedrichstr. 123.",
        "Büro: Berliner Straße 12a",
        "Schillerweg 4, Stuttgart",
        "J'habite au 12 rue de la Paix, 75002 Paris.",
        "Notre bureau : 5, avenue Anatole France",
        "Adresse : 14 bis rue des Lilas",
        "Vivo en Calle Mayor 5, Madrid.",
        "Estamos en Calle de Alcalá 20",
        "Abito in Via Roma 10, Milano.",
        "Moro na Rua Augusta 123.",
        "Endereço: Avenida Paulista, 1578",
        "Kantoor: Kalverstraat 92",
        "Biuro: ul. Marszałkowska 10",
        "Адрес: ул. Тверская, д. 7",
        "我住在北京市朝阳区建国路88号。",
        "東京都千代田区1丁目",
        "서울특별시 종로구 세종대로 175",
    ],
)
def test_it_finds_street_addresses(text):
    assert find_personal_data([text]) == "street_address"


@pytest.mark.parametrize(
    "text",
    [
        "Here are 5 ways to cross the road.",
        "Top 10 Things To Do On Main Street",
        "Route 66 runs to Santa Monica.",
        "I have 2 hard drives.",
        "In 2023 the market grew.",
        "Step 1: Drive to the store.",
        "3 Tips From Dr. Oz",
        "5 Facts About St. Louis",
        "Er belegte Platz 2 im Rennen.",
        "Die Straße war 5 km lang.",
        "Il y a 2 rues à traverser.",
        "Hay 4 calles cerradas.",
        "send it via email 2 times",
        "10月3号开会。",
        "Gate 5 is at the end of the hall.",
    ],
)
def test_it_lets_numbers_near_street_words_through(text):
    assert find_personal_data([text]) is None


@pytest.mark.parametrize(
    "text",
    [
        "IBAN DE89 3704 0044 0532 0130 00",
        "IBAN: DE89370400440532013000",
        "GB29 NWBK 6016 1331 9268 19",
        "FR14 2004 1010 0505 0001 3M02 606",
        "pay to NL91ABNA0417164300 please",
    ],
)
def test_it_finds_ibans(text):
    assert find_personal_data([text]) == "iban"


@pytest.mark.parametrize("text", ["DE89 3704 0044 0532 0130 01", "RTX4090 and CO2", "ABDE89370400440532013000"])
def test_it_lets_invalid_ibans_through(text):
    assert find_personal_data([text]) is None


def test_the_first_text_with_personal_data_decides():
    texts = ["What is 2 + 2?", "Call me at (212) 736-5000", "mail john.smith@gmail.com"]
    assert find_personal_data(texts) == "phone"


def test_within_a_text_the_reasons_rank_as_listed():
    text = f"I live at 123 Main Street, card {VISA}, ip 8.8.8.8, phone +1 212 736 5000, mail john.smith@gmail.com"
    assert find_personal_data([text]) == "email"
    assert find_personal_data([text.replace("john.smith@gmail.com", "")]) == "phone"
    assert find_personal_data([f"ip 8.8.8.8 and card {VISA}"]) == "payment_card"
    assert find_personal_data(["GB29 NWBK 6016 1331 9268 19 at 123 Main Street"]) == "street_address"


@pytest.mark.parametrize("texts", [[], [""], ["", ""], ["What is the capital of France?", "Paris."]])
def test_it_finds_nothing_in_empty_or_clean_input(texts):
    assert find_personal_data(texts) is None


def test_it_accepts_any_iterable_and_skips_texts_that_are_not_strings():
    assert find_personal_data(iter(["hello", None, "call +1 212 736 5000"])) == "phone"  # type: ignore[list-item]


def test_it_is_deterministic():
    texts = ["x" * 5000 + " Hauptstraße 5 " + "y" * 5000, "+49 30 12345678"]
    assert {find_personal_data(texts) for _ in range(5)} == {"street_address"}


def test_it_finds_personal_data_at_the_end_of_a_long_text():
    filler = "The model answered the question about sorting algorithms in 2023 and 2024. " * 2000
    assert find_personal_data([filler + "Call me at +1 212 736 5000."]) == "phone"
    assert find_personal_data([filler + "Meine Adresse: Hauptstraße 5"]) == "street_address"
    assert find_personal_data([filler]) is None


def test_it_survives_lone_surrogates():
    assert find_personal_data(["broken \ud800 text, call +1 212 736 5000"]) == "phone"


@pytest.mark.parametrize(
    "text",
    [
        "jane dot roe at gmail dot com",
        "write to Jane DOT Roe AT gmail DOT com",
        "jane.roe at gmx dot net",
        "omar at uni-heidelberg dot de",
        "li dot wei at mail dot tsinghua dot edu dot cn",
        "jane.roe @ gmail.com",
        "jane.roe @gmail.com and jane.roe@ gmail.com",
        "mail jane.roe @ outlook.co.uk (work)",
        "jane.roe＠gmail.com",
        "邮箱：zhang.san＠163．com",
        "jane.roe﹫gmail.com",
    ],
)
def test_it_finds_addresses_spelled_out_spaced_or_with_a_full_width_at(text):
    assert find_personal_data([text]) == "email"


@pytest.mark.parametrize(
    "text",
    [
        "y = x @ self.weights",
        "scores = q @ k.transpose(-2, -1)",
        "out = attn @ v.to(device)",
        "a @ b.com",
        "The market peaked at the dot com bubble.",
        "compute the dot product at x dot y",
        "user dot name at example dot com",
        "your.email @ gmail.com",
        "write to someone＠example.com",
        "Look at google.com for it.",
    ],
)
def test_it_lets_matrix_products_sentences_and_spelled_placeholders_through(text):
    assert find_personal_data([text]) is None


@pytest.mark.parametrize(
    "text",
    [
        "our DNS server 8.8.8.8 answers",
        "the printer driver 203.0.114.5 is down",
        "rebuild 8.8.4.4",
        "call dispatch 93.184.216.34",
        "the observer 1.1.1.1",
        "autoupdate 8.8.8.8",
        "the server: 8.8.8.8",
    ],
)
def test_it_finds_public_ip_addresses_after_words_that_end_like_version_words(text):
    assert find_personal_data([text]) == "ip_address"


@pytest.mark.parametrize(
    "text", ["build 1.2.3.4", "ver. 8.8.8.8", "update: 8.8.8.8", "patch #8.8.8.8", "release 2.3.4.5"]
)
def test_a_dotted_quad_right_after_a_version_word_is_still_a_version(text):
    assert find_personal_data([text]) is None


def test_an_obfuscated_address_outranks_a_phone_number():
    assert find_personal_data(["call +1 212 736 5000 or write jane (at) uni-heidelberg (dot) de"]) == "email"
