"""Normalization: NFC, whitespace, boilerplate, canonical casing."""

from __future__ import annotations

import unicodedata

from records import procedure

from data.normalize import item, locale, normalize_record, platform, text


def test_text_is_nfc_with_collapsed_whitespace():
    decomposed = unicodedata.normalize("NFD", "Réglages")
    assert text(f"  Ouvrez\u00a0 {decomposed}\n") == "Ouvrez Réglages"


def test_item_strips_numbering_and_politeness():
    assert item('1. Tap "Settings".') == 'Tap "Settings".'
    assert item('Step 2: tap "Privacy".') == 'Tap "Privacy".'
    assert item("Please open the app.") == "Open the app."
    assert item('- Toggle "Wi-Fi" off.') == 'Toggle "Wi-Fi" off.'
    assert item('Paso 3: Toca "Ajustes".') == 'Toca "Ajustes".'
    assert item('Tap "2. Step verification".') == 'Tap "2. Step verification".'


def test_app_artifacts_are_lowercased():
    assert platform("iOS") == "ios" and platform("iPhone") == "ios" and platform("Mac OS") == "macos"
    assert locale("es_es") == "es-ES" and locale("FR") == "fr"


def test_record_normalization_orders_output_keys_and_tolerates_bad_shapes():
    record = procedure("  reset   password ", ['1. Tap "Log in".'], platform="Android", locale="pt_br")
    record["output"] = dict(reversed(list(record["output"].items())))
    out = normalize_record(record)
    assert out["input"]["intent"] == "reset password"
    assert out["input"]["context"] == {"platform": "android", "locale": "pt-BR"}
    assert list(out["output"]) == ["schema", "steps", "constraints", "validation"]
    assert out["output"]["steps"] == ['Tap "Log in".']
    assert normalize_record({"input": "oops", "output": 3}) == {"input": "oops", "output": 3}
