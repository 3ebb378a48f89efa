"""PII redaction: emails, phone numbers, order IDs, card numbers, IBANs and US social security
numbers become typed placeholders."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

EMAIL, PHONE, ORDER_ID, CARD, IBAN = "<EMAIL>", "<PHONE>", "<ORDER_ID>", "<CARD>", "<IBAN>"
SSN = "<SSN>"
PLACEHOLDERS = (EMAIL, PHONE, ORDER_ID, CARD, IBAN, SSN)

# Unicode letters on both sides (RFC 6531): "josé@correo.es", "用户@例子.中国".
_EMAIL_RE = re.compile(r"(?<![\w.+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}")
# An address written out to dodge filters: "jane dot doe at gmail dot com", "jane(at)mail[dot]fr".
# It must end in "dot <known TLD>", so ordinary sentences with "at" are left alone.
_AT = r"(?:\s*[\(\[\{]\s*at\s*[\)\]\}]\s*|\s+at\s+|\s*@\s*)"
_DOT = r"(?:\s*[\(\[\{]\s*dot\s*[\)\]\}]\s*|\s+dot\s+)"
_TLDS = r"com|net|org|edu|gov|io|co|uk|de|fr|es|it|br|pt|mx|ca|nl|in|au|jp|cn|kr|ru|info|me|us|eu"
_SPELLED_EMAIL_RE = re.compile(
    rf"(?i)(?<![\w.+-])[\w+-]+(?:(?:\.|{_DOT})[\w+-]+)*{_AT}[\w-]+(?:(?:\.|{_DOT})[\w-]+)*{_DOT}(?:{_TLDS})\b"
)
# US social security numbers, dash- or space-grouped; area 000, 666 and 9xx are never issued.
_SSN_RE = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\d-])")

# Amazon-style 3-7-7 order numbers are distinctive enough to need no keyword.
_AMAZON_ORDER_RE = re.compile(r"\b\d{3}-\d{7}-\d{7}\b")
# Prefixed references such as ORD-88412-KX, INV-2024-0042, TXN4419203381.
_PREFIXED_ID_RE = re.compile(
    r"(?i)\b(?:ORD|ORDER|INV|PO|TXN|BK|RES|REF)[-#]?(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{2,}\b"
)
# A keyword (in the dataset's languages) followed by an identifier that holds digits.
_ORDER_KEYWORDS = (
    r"order|orders|orden|pedido|commande|bestellung|bestellnummer|encomenda|ordine|"
    r"transaction|transacci[oó]n|transa[cç][aã]o|invoice|factura|facture|rechnung|fattura|"
    r"booking|reservation|r[ée]servation|reserva|buchung|prenotazione|confirmation|"
    r"itinerary|claim|ticket|case|tracking|reference|referencia|r[ée]f[ée]rence"
)
_ORDER_NOUNS = r"id|no\.?|nr\.?|n[º°o]\.?|number|num[eé]ro|n[uú]mero|nummer|numero|code|ref(?:erence)?"
_KEYWORD_ID_RE = re.compile(
    rf"(?i)\b(?:{_ORDER_KEYWORDS})\b(?:\s+(?:{_ORDER_NOUNS}))?(?:\s+(?:is|was|es|est|ist|é|è))?\s*:?\s*"
    r"(?P<id>#?(?=[A-Za-z0-9.-]*\d)[A-Za-z0-9](?:[A-Za-z0-9-]|\.(?=[A-Za-z0-9])){3,})"
)
_HASH_ID_RE = re.compile(r"(?<![\w&])#\d{4,}\b")
# A bare run of 11+ digits is an account, order or tracking number, not a date or a version.
_LONG_DIGITS_RE = re.compile(r"(?<![\w.,-])\d{11,}(?![\w.,-]\d)")
# IBAN: country code, check digits, 11-30 alphanumerics, optionally grouped by spaces or
# dashes, in either case ("de89-3704-0044-0532-0130-00"); the mod-97 check decides.
_IBAN_RE = re.compile(r"(?i)\b[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]){11,30}\b")
# Dates and years after a keyword ("order 2024-03-15", "booking 2025") are not identifiers.
_NOT_AN_ID_RE = re.compile(r"^#?(?:(?:19|20)\d\d(?:-\d\d){0,2}|\d\d?-\d\d?-\d{2,4})$")

# 13-19 digits, optionally grouped by spaces, dashes or dots.
_CARD_RE = re.compile(r"(?<![\d-])\d(?:[ .-]?\d){12,18}(?![\d-])")
_CARD_GROUPED_RE = re.compile(r"^\d{4}([ .-])\d{4}\1\d{4}\1\d{1,7}$")

# Regions tried for national-format phone numbers; the record's own locale region goes first.
# Only numbers that libphonenumber calls VALID in one of them are masked, which keeps
# dates, versions, IPs, postcodes and amounts intact.
_PHONE_REGIONS = (
    "US", "GB", "FR", "DE", "ES", "IT", "BR", "PT", "MX", "CA", "NL", "IN", "AU",
    # and the national formats of the other large locales: East Asia, the Gulf, Russia, ...
    "JP", "KR", "CN", "TW", "HK", "SA", "AE", "EG", "RU", "TR", "PL", "SE", "CH", "AT", "BE",
    "IE", "NZ", "SG", "ZA", "AR", "CO", "CL", "ID", "PH", "TH", "VN", "NG", "PK", "IL",
)  # fmt: skip
# A date written with dots, slashes or dashes ("02.06.2025", "2025-06-02") is a VALID national
# number in some regions (DE reads 02.06.2025 as a Berlin-area number): such a match is a date.
_DATE_RE = re.compile(
    r"^(?:(?:0?[1-9]|[12]\d|3[01])([./-])(?:0?[1-9]|1[0-2])\1(?:\d{4}|\d{2})"
    r"|(?:0?[1-9]|1[0-2])([./-])(?:0?[1-9]|[12]\d|3[01])\2(?:\d{4}|\d{2})"
    r"|\d{4}([./-])(?:0?[1-9]|1[0-2])\3(?:0?[1-9]|[12]\d|3[01]))$"
)
# No phone number has fewer digits than this, so text with fewer skips the matcher.
_MIN_PHONE_DIGITS = 7


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _sub_cards(text: str, counts: Counter) -> str:
    def repl(m: re.Match) -> str:
        raw = m.group(0)
        digits = re.sub(r"\D", "", raw)
        if _luhn_ok(digits) or _CARD_GROUPED_RE.match(raw):
            counts[CARD] += 1
            return CARD
        return raw

    return _CARD_RE.sub(repl, text)


def _sub_order_ids(text: str, counts: Counter) -> str:
    def whole(m: re.Match) -> str:
        counts[ORDER_ID] += 1
        return ORDER_ID

    text = _AMAZON_ORDER_RE.sub(whole, text)
    text = _PREFIXED_ID_RE.sub(whole, text)

    def keyed(m: re.Match) -> str:
        ident = m.group("id")
        if _NOT_AN_ID_RE.match(ident) or ident.strip("#").isalpha():
            return m.group(0)
        counts[ORDER_ID] += 1
        start = m.start("id") - m.start(0)
        return m.group(0)[:start] + ORDER_ID

    text = _KEYWORD_ID_RE.sub(keyed, text)
    text = _HASH_ID_RE.sub(whole, text)
    return _LONG_DIGITS_RE.sub(lambda m: whole(m) if not _luhn_ok(m.group(0)) else m.group(0), text)


def _iban_ok(raw: str) -> bool:
    """ISO 13616 mod-97 check, so that random capitals-and-digits are left alone."""
    compact = raw.replace(" ", "").replace("-", "").upper()
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _sub_ibans(text: str, counts: Counter) -> str:
    def repl(m: re.Match) -> str:
        if _iban_ok(m.group(0)):
            counts[IBAN] += 1
            return IBAN
        return m.group(0)

    return _IBAN_RE.sub(repl, text)


def _sub_phones(text: str, region: str | None, counts: Counter) -> str:
    import phonenumbers

    if sum(ch.isdigit() for ch in text) < _MIN_PHONE_DIGITS:
        return text
    regions = ([region] if region else []) + [r for r in _PHONE_REGIONS if r != region]
    spans: list[tuple[int, int]] = []
    for reg in regions:
        for match in phonenumbers.PhoneNumberMatcher(text, reg, leniency=phonenumbers.Leniency.VALID):
            if not _DATE_RE.match(match.raw_string):
                spans.append((match.start, match.end))
    # A number written with its "+country" prefix is a phone number even when its range is
    # unassigned (e.g. the UK's +44 7700 900xxx drama numbers): accept those as merely possible.
    for match in phonenumbers.PhoneNumberMatcher(text, "US", leniency=phonenumbers.Leniency.POSSIBLE):
        if match.raw_string.startswith("+"):
            spans.append((match.start, match.end))
    if not spans:
        return text
    # Keep the longest span wherever matches from different regions overlap.
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans, key=lambda s: (s[0], -s[1])):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    for start, end in reversed(merged):
        # A bracketed prefix such as "(415)" belongs to the number.
        if start > 0 and text[start - 1] == "(" and ")" in text[start:end]:
            start -= 1
        text = text[:start] + PHONE + text[end:]
        counts[PHONE] += 1
    return text


def redact(text: str, region: str | None = None, counts: Counter | None = None) -> str:
    """Mask PII in `text`. `region` (e.g. 'FR') helps read national phone formats.

    Order matters: emails first (they hold digits), then IBANs, order IDs and cards (long
    digit runs a phone matcher could misread), then phone numbers.
    """
    counts = Counter() if counts is None else counts

    def email(m: re.Match) -> str:
        counts[EMAIL] += 1
        return EMAIL

    def ssn(m: re.Match) -> str:
        counts[SSN] += 1
        return SSN

    text = _EMAIL_RE.sub(email, text)
    text = _SPELLED_EMAIL_RE.sub(email, text)
    text = _sub_ibans(text, counts)
    text = _SSN_RE.sub(ssn, text)
    text = _sub_order_ids(text, counts)
    text = _sub_cards(text, counts)
    return _sub_phones(text, region, counts)


def region_of(context: dict[str, Any] | None) -> str | None:
    """The region part of a context's locale ('es-MX' -> 'MX'), if any."""
    locale = (context or {}).get("locale") or ""
    parts = locale.replace("_", "-").split("-")
    return parts[1].upper() if len(parts) > 1 and parts[1].isalpha() else None


def redact_value(value: Any, region: str | None, counts: Counter) -> Any:
    """Redact every string inside a JSON value, leaving structure and non-strings alone."""
    if isinstance(value, str):
        return redact(value, region, counts)
    if isinstance(value, list):
        return [redact_value(v, region, counts) for v in value]
    if isinstance(value, dict):
        return {k: redact_value(v, region, counts) for k, v in value.items()}
    return value


def redact_record(record: dict[str, Any], counts: Counter | None = None) -> dict[str, Any]:
    """Redact the input and output of a record; `meta` and `id` are annotator-owned and kept."""
    counts = Counter() if counts is None else counts
    region = region_of(record.get("input", {}).get("context"))
    out = dict(record)
    for part in ("input", "output"):
        if part in record:
            out[part] = redact_value(record[part], region, counts)
    return out
