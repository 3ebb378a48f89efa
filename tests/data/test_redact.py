"""PII redaction on tricky cases: what must be masked, and what must survive."""

from __future__ import annotations

from collections import Counter

import pytest

from data.redact import redact, redact_record, region_of


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail me at jo.king+shop@mail.example.co.uk today", "mail me at <EMAIL> today"),
        ("call +44 20 7946 0958 or +1 (415) 555-0134", "call <PHONE> or <PHONE>"),
        ("Handy: +49 151 23456789", "Handy: <PHONE>"),
        ("zap +55 11 91234-5678", "zap <PHONE>"),
        ("móvil +34 612 34 56 78.", "móvil <PHONE>."),
        ("call 415-555-0134 after 5", "call <PHONE> after 5"),
        ("order 113-4928837-2201934 isn't mine", "order <ORDER_ID> isn't mine"),
        ("Order #1042 was charged twice", "Order <ORDER_ID> was charged twice"),
        ("ref ORD-88412-KX from the shop", "ref <ORDER_ID> from the shop"),
        ("mi pedido nº 48213 no llegó", "mi pedido nº <ORDER_ID> no llegó"),
        ("Bestellnummer: 302-1234567-7654321", "Bestellnummer: <ORDER_ID>"),
        ("my order number is 5512-8830", "my order number is <ORDER_ID>"),
        ("card 4111 1111 1111 1111 expired", "card <CARD> expired"),
        ("card 5500-0000-0000-0004", "card <CARD>"),
        ("4111111111111111 was declined", "<CARD> was declined"),
        ("IBAN DE89 3704 0044 0532 0130 00, name Klaus", "IBAN <IBAN>, name Klaus"),
        ("her number is +44 7700 900123 and", "her number is <PHONE> and"),
        (
            "the itinerary number might be 72051839446721",
            "the itinerary number might be <ORDER_ID>",
        ),
    ],
)
def test_pii_is_masked(text, expected):
    assert redact(text) == expected


def test_national_phone_uses_the_locale_region():
    assert redact("mon numéro 06 12 34 56 78", region="FR") == "mon numéro <PHONE>"
    assert region_of({"locale": "fr-FR"}) == "FR" and region_of({"locale": "fr"}) is None
    assert region_of(None) is None


@pytest.mark.parametrize(
    "text",
    [
        "Update to iOS 17.4.1 or WhatsApp 2.24.8.76 (v2.43.0 of the CLI)",
        "Due 2024-03-15, or 15/03/2025, or 12.05.2024 at 3:30 PM",
        "Flight LH 400 leaves at 10:30-11:45 from gate 22",
        "Firmware 1.108.2 build 20240315 on 192.168.1.10 port 8080",
        "Enter the 6-digit code 483920 sent by SMS",
        "Pay 1,299.00 EUR for tax year 2023 with form 1099-K by 15/04/2025",
        "The order is late and the booking for 2025 is fine",
        "Node 20.11.1 and Python 3.11.7, zip 94105",
        "Check DE12 is not an IBAN, nor is AB12 3456 7890 1234 5678",
    ],
)
def test_versions_dates_and_codes_survive(text):
    counts = Counter()
    assert redact(text, counts=counts) == text
    assert not counts


@pytest.mark.parametrize(
    ("text", "region"),
    [
        ("Wie checke ich für LH 400 am 02.06.2025 ein?", "DE"),  # a VALID Berlin number to libphonenumber
        ("Steuerbescheid 2023 kam am 14.03.2024", "DE"),
        ("due 06/12/2025 or 2025-06-12", "US"),
    ],
)
def test_dates_that_parse_as_national_numbers_survive(text, region):
    assert redact(text, region) == text
    assert redact("ruf mich an: 030 12345678", region="DE") == "ruf mich an: <PHONE>"


def test_luhn_invalid_long_digit_runs_are_identifiers_not_cards():
    counts = Counter()
    assert redact("enter 1234567890123 in the box", counts=counts) == "enter <ORDER_ID> in the box"
    assert counts == Counter({"<ORDER_ID>": 1})


def test_redact_record_counts_and_keeps_meta():
    record = {
        "id": "x-1",
        "input": {
            "intent": "refund order #99881 to ana@example.com",
            "context": {"locale": "es-ES"},
        },
        "output": {
            "schema": "ordered_steps",
            "steps": ["Call +34 612 34 56 78."],
            "constraints": [],
            "validation": ["Check ana@example.com."],
        },
        "meta": {"domains": ["ecommerce"], "language": "es", "annotator_id": "ann_01"},
    }
    counts = Counter()
    out = redact_record(record, counts)
    assert out["input"]["intent"] == "refund order <ORDER_ID> to <EMAIL>"
    assert out["output"]["steps"] == ["Call <PHONE>."]
    assert out["output"]["validation"] == ["Check <EMAIL>."]
    assert out["meta"] == record["meta"] and out["id"] == "x-1"
    assert counts == Counter({"<EMAIL>": 2, "<ORDER_ID>": 1, "<PHONE>": 1})
    assert record["input"]["intent"].startswith("refund order #99881")  # input not mutated


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        ("write to josé.pérez@correo.es now", "write to <EMAIL> now", "<EMAIL>"),
        ("用户@例子.中国 に送って", "<EMAIL> に送って", "<EMAIL>"),
        ("mail jane dot doe at gmail dot com please", "mail <EMAIL> please", "<EMAIL>"),
        ("jane(at)example(dot)org", "<EMAIL>", "<EMAIL>"),
        ("iban de89 3704 0044 0532 0130 00", "iban <IBAN>", "<IBAN>"),
        ("IBAN DE89-3704-0044-0532-0130-00", "IBAN <IBAN>", "<IBAN>"),
        ("card 4111.1111.1111.1111", "card <CARD>", "<CARD>"),
        ("ref ord-88412-kx", "ref <ORDER_ID>", "<ORDER_ID>"),
        ("my ssn is 123-45-6789", "my ssn is <SSN>", "<SSN>"),
        ("SSN 123 45 6789", "SSN <SSN>", "<SSN>"),
        ("東京 03-1234-5678 に電話", "東京 <PHONE> に電話", "<PHONE>"),  # Japan
        ("서울 02-312-3456", "서울 <PHONE>", "<PHONE>"),  # Korea
        ("北京 010 6552 9988", "北京 <PHONE>", "<PHONE>"),  # China
        ("الرياض 011 234 5678", "الرياض <PHONE>", "<PHONE>"),  # Saudi Arabia
        ("Москва 8 (495) 123-45-67", "Москва <PHONE>", "<PHONE>"),  # Russia
    ],
)
def test_formats_beyond_the_ascii_and_thirteen_region_basics(text, expected, kind):
    counts: Counter = Counter()
    assert redact(text, counts=counts) == expected
    assert counts == Counter({kind: 1})


@pytest.mark.parametrize(
    "text",
    [
        "meet at the cafe dot then",  # "at" and "dot" in a sentence, no domain after
        "version 1.2.3 on 2024-03-15 costs 12.50",
        "macOS 10.15.7 at 192.168.1.1",
        "area 000-12-3456 is never issued",
        "room 12, floor 3",
    ],
)
def test_look_alikes_are_left_alone(text):
    assert redact(text) == text
