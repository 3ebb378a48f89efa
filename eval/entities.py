"""Hallucination: steps that name apps, screens or UI entities absent from the context and the allow-list.

What a step names (`named_entities`):
- every quoted UI label ("Settings", “Sécurité”, «Réglages»): screens, buttons, tabs;
- every app or brand of run/selfcheck's brand list, outside quotes (case-sensitive: "edge case"
  is not Microsoft Edge);
- "<Name> app|application|website|site" mentions, and in English, every other run of capitalised
  words after the verb ("Open QuickPayz", "the Account Center page"). Other languages skip
  that last rule, since German capitalises every noun.

An entity is allowed (`is_allowed`) when the intent, the context or the reference answer holds
it verbatim (accent- and case-folded), when all its content words (eval/lemma.py lemmas, minus
stopwords) occur in them or in `GENERIC_UI` (labels that exist in nearly every app), or when it
is one of run/selfcheck's `allowed_entities` (the vendor brands that the platform or a named app
brings with it). The reference answer is part of the allow-list because the context names at
most one app and screen while the labels on the way are legitimately many: the gold names them.
A step is hallucinated when it names at least one entity that is not allowed; the rate is the
share of such steps in the answer.
"""

from __future__ import annotations

import re
from typing import Any

from eval.lemma import STOPWORDS, WORD, fold, lemma

# Labels and words found in nearly every app: naming them invents nothing.
_GENERIC_UI = """settings setting home menu profile account save cancel ok next done back continue
    submit confirm search edit delete remove add sign log in out security privacy notification help
    more general yes no close open apply update send share download upload allow turn on off enable disable
    password email phone number name detail option preference manage view all create start finish
    login logout setup advanced about support contact message inbox file new"""
GENERIC_UI = set(_GENERIC_UI.split())
_QUOTED = re.compile(r'"([^"]+)"|“([^”]+)”|«\s*([^»]+?)\s*»|„([^“”]+)[“”]|‘([^’]+)’|`([^`]+)`')
_APP_MENTION = re.compile(
    r"((?:[A-Z0-9][\w+&.'-]*\s+){0,3}[A-Z0-9][\w+&.'-]*)\s+(?:app|application|website|site)\b"
)
_CAPITALISED = re.compile(r"[A-Z][\w+&'-]*(?:\s+(?:[A-Z0-9][\w+&'-]*))*")


def _brand_names() -> list[str]:
    from run.selfcheck import brand_names

    return brand_names()


def named_entities(step: str, language: str = "en") -> list[str]:
    """The apps, screens and UI labels a step names (see the module docstring)."""
    found = [next(g for g in m.groups() if g) for m in _QUOTED.finditer(step)]
    bare = _QUOTED.sub(" ", step).strip()
    for name in _brand_names():
        if re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", bare):
            found.append(name)
    found += [m.group(1) for m in _APP_MENTION.finditer(bare)]
    if language == "en":
        for m in _CAPITALISED.finditer(bare):
            words = m.group(0).split()
            if m.start() == 0:  # the step's verb opens the first run
                words = words[1:]
            if words:
                found.append(" ".join(words))
    return [e.strip(" .,:;!?") for e in found if e.strip(" .,:;!?")]


def allowed_text(intent: str, context: dict[str, Any] | None, reference: str) -> str:
    """The text that legitimately names entities: intent, context values and the reference answer."""
    values = [v if isinstance(v, str) else " ".join(map(str, v)) for v in (context or {}).values() if v]
    return " ".join([intent, *values, reference])


def is_allowed(entity: str, allowed: str, brands: set[str]) -> bool:
    """Whether an entity is named by the allowed text, by the generic UI list, or by the brand rules."""
    if entity in brands or fold(entity) in fold(allowed):
        return True
    words = {lemma(w) for w in WORD.findall(fold(entity))} - STOPWORDS
    vocabulary = {lemma(w) for w in WORD.findall(fold(allowed))} | GENERIC_UI
    return words <= vocabulary


def hallucinations(
    steps: list[str], intent: str, context: dict[str, Any] | None, reference: str, language: str = "en"
) -> list[dict[str, Any]]:
    """Each step that names an entity absent from the allow-list: its index and the entities."""
    from run.selfcheck import allowed_entities

    allowed = allowed_text(intent, context, reference)
    brands = allowed_entities(intent, context)
    out = []
    for i, step in enumerate(steps):
        bad = [e for e in named_entities(step, language) if not is_allowed(e, allowed, brands)]
        if bad:
            out.append({"step": i, "entities": sorted(set(bad))})
    return out


def hallucination_rate(
    steps: list[str], intent: str, context: dict[str, Any] | None, reference: str, language: str = "en"
) -> float | None:
    """The share of steps that name an entity absent from the allow-list; None with no steps."""
    if not steps:
        return None
    return len(hallucinations(steps, intent, context, reference, language)) / len(steps)
