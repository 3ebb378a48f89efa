"""Self-check rules for a draft procedure, and the revision message that states what a draft broke.

Rules (each a name in `RULES`):
- imperative: every step in a Latin-script language starts with a verb. A leading clause that
  sets the scene ("On the "Log in" screen, tap ...", "Si ..., toca ...") is skipped up to its
  comma, and a French "Ne" before its verb. A word counts as a verb when it is in the verb list of
  one of the dataset's Latin-script languages (en, es, fr, de, pt, it), or by heuristic: French
  "-ez" imperatives, German "<verb> Sie", clitics (Repítela, Ajoutez-la) and prefixes
  (Right-click, Re-enter). Quoted UI labels are fine anywhere after it. A step with letters of
  another script outside its quoted labels (ar, hi, ja, ru, zh: no verb list) is not judged.
- one_action: no step chains actions with "and then" (or its es/fr/de/pt/it forms); quoted UI
  labels are masked first, so a button called "Save and then exit" is fine.
- max_steps: at most N steps.
- validation: at least one validation check of two words or more that is not a copy of a step.
- pii: no string holds PII that data.redact would mask (emails, phones, order ids, cards, IBANs).
- foreign_entity: no app, brand or platform named in steps or validation that the intent and
  context do not imply (see `allowed_entities`); quoted UI labels ("Sign in with Google") are fine.

Refusals are not self-checked: they are short, fixed-shape, and their text comes from the input.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from data.redact import redact, region_of
from data.schema import is_refusal

RULES = {
    "imperative": "each step starts with a verb in the imperative",
    "one_action": 'each step is one action: no chained "and then"',
    "max_steps": "at most N steps (EngineConfig.max_steps)",
    "validation": "at least one validation check the user can do",
    "pii": "no personal data (emails, phone numbers, order ids, card numbers)",
    "foreign_entity": "no apps, brands or platforms that the intent and context do not mention",
}

# Verbs that open steps, by language, as they appear in the authored data plus common UI verbs.
_VERBS = {
    "en": """accept access activate add adjust allow answer apply approve archive ask assign attach
        authorize back book bring browse call cancel change check choose clear click close collect
        commit compare complete configure confirm connect contact copy create cross cut decline
        delete describe deselect disable disconnect dismiss double-click download drag drop edit email
        empty enable end enter erase expand explain export file fill filter find finish follow forward
        format generate get give go grant have hide highlight hold hover import insert install invite
        join keep label launch leave let limit link list load lock log look make map mark message
        move mute name navigate note open paste pause pay photograph pick pin pinch place plug point
        post press preview print provide publish pull push put quit read reboot record refresh
        register reinstall relist reload remove rename reopen repeat replace reply report request
        reset restart restore resume return review revoke right-click roll rotate run save say scan
        schedule scroll search select send set share show sign skip sort specify start stay stop
        store submit swipe switch sync take tap tell test tick toggle touch try turn type unblock
        uncheck uninstall unlink unlock unmute unpin update upgrade upload use verify view visit
        wait warn watch write zoom""",
    "es": """abre accede acepta activa actualiza añade aprueba baja borra busca cambia cancela cierra
        comprueba configura confirma conecta copia crea deja desactiva descarga desinstala desliza
        elige elimina entra entrega envía escanea escribe establece finaliza guarda haz identifica
        ejecuta importa indica inicia instala introduce ir marca mira pasa pega pulsa rellena repite responde
        revisa selecciona sigue sube toca usa ve verifica vuelve""",
    "fr": """active ajoute appuie attends branche choisis clique coche colle confirme connecte copie
        crée décris désactive entre indique lance ouvre renseigne saisis sélectionne tape touche
        va vérifie""",
    "de": """aktiviere bestätige begründe behebe beschreibe bringe deaktiviere dimme entferne ergänze
        folge füge gehe gib hänge installiere kehre klicke kopiere lade lege lies lösche markiere
        melde nimm notiere öffne prüfe rufe schicke scanne schalte schließe schreibe sende setze
        speichere starte stelle suche tippe trage vergrößere warte wechsle wähle zeige ziehe""",
    "pt": """abra acesse adicione ative autorize baixe clique cole coloque confira confirme conecte
        crie dê defina desative desmarque digite encontre entre escolha envie execute faça informe
        insira instale marque mantenha preencha revise salve selecione siga solicite toque
        vá verifique volte""",
    "it": """accedi accetta aggiungi apri attiva cerca chiedi clicca conferma controlla copia
        disattiva elimina esegui fai imposta inquadra inserisci leggi premi salva scansiona scarica
        scegli scorri scrivi seleziona sposta tocca vai verifica""",
}
# Words that open a scene-setting clause: the verb comes after its comma.
_LEAD_INS = """on in under if when from at after once before while within inside back
    en si desde cuando después dentro bajo
    dans sous sur depuis quand après
    auf im unter wenn nach sobald falls
    na no em se quando depois nas nos
    sul sulla nella nel dopo dal dalla"""
_PLEASE = ("please", "por favor", "s'il vous plaît", "bitte", "per favore", "por gentileza")
_CLITICS = ("las", "los", "les", "la", "lo", "le", "te", "me", "se", "nos", "vous", "toi", "moi", "lui")
# "and then" in the dataset languages; "puis" and "dann" alone also chain two actions.
_CHAINED = re.compile(
    r"(?i)\b(?:and then|y luego|y después|y entonces|et ensuite|et puis|puis|und dann|und danach|"
    r"e depois|e então|e em seguida|e poi|e quindi|e dopo)\b"
)
_QUOTED = re.compile(r'"[^"]*"|“[^”]*”|«[^»]*»|„[^“”]*[“”]|‘[^’]*’|`[^`]*`')

# Distinctive app and brand names (generic ones such as "Settings", "Home" or "Signal" are left
# out: they read as ordinary words). A named entity outside the allow-list is "foreign".
_BRANDS = """Shopify|eBay|Etsy|AliExpress|Walmart|Zalando|Vinted|Mercado Libre|Mercado Livre|Netflix|
    Spotify|Disney+|Twitch|Crunchyroll|Deezer|Plex|TikTok|Telegram|Snapchat|LinkedIn|Reddit|Discord|
    Proton Mail|Slack|Zoom|Jira|Confluence|Asana|Trello|Notion|Salesforce|HubSpot|Zendesk|Workday|
    Okta|Dropbox|PayPal|Venmo|Revolut|Monzo|N26|Nubank|Stripe|GitHub|GitLab|Docker|Vercel|Uber|
    Lyft|Airbnb|Booking.com|Expedia|Ryanair|Lufthansa|easyJet|Steam|Nintendo|Roblox|Epic Games|
    1Password|Bitwarden|Authy|Philips Hue|SmartThings|Sonos|Doctolib|MyChart|Zocdoc|Firefox"""
# Brands of one vendor ('|' separates names with spaces): naming one, in the intent or context
# or through the platform, allows all of them.
_FAMILIES = {
    "apple": "Apple iPhone iPad Mac macOS iOS iPadOS iCloud Safari Siri|App Store|Apple Pay|Face ID|Touch ID",
    "google": "Google Gmail Android Chrome YouTube|Google Play|Play Store|Google Pay|Google Drive",
    "microsoft": "Microsoft Windows Outlook OneDrive Xbox Excel Edge Minecraft|Microsoft Teams|File Explorer",
    "amazon": "Amazon Alexa AWS|Prime Video",
    "meta": "Meta Facebook Instagram WhatsApp Messenger Threads",
    "sony": "Sony PlayStation PS5 PS4",
}
# The vendor a platform brings with it; a web context may name any browser.
PLATFORM_FAMILIES = {"ios": "apple", "ipados": "apple", "macos": "apple", "android": "google"}
PLATFORM_FAMILIES["windows"] = "microsoft"
_BROWSERS = {"Chrome", "Safari", "Firefox", "Edge"}
# Constraints are not checked: they may rightly name other services ("billed by Apple").
_ENTITY_FIELDS = ("steps", "validation")


@dataclass(frozen=True)
class Violation:
    """One broken rule: which, where in the output, and what a reviser should change."""

    rule: str
    where: str
    message: str


def _words(text: str, sep: str | None = None) -> list[str]:
    """The entries of a whitespace- (or `sep`-) separated list literal above."""
    return [w.strip() for w in text.split(sep) if w.strip()]


def _names(family: str) -> list[str]:
    """A family's brand names: single words, and the '|'-separated names that hold spaces."""
    first, *multi = family.split("|")
    return first.split() + multi


_BRAND_NAMES = _words(_BRANDS, "|")
_FAMILY_NAMES = {k: _names(v) for k, v in _FAMILIES.items()}


def brand_names() -> list[str]:
    """Every app, brand and platform name the foreign_entity rule knows (for scoring, too)."""
    return _BRAND_NAMES + [n for names in _FAMILY_NAMES.values() for n in names]


def _fold(word: str) -> str:
    """Lowercase without accents, so 'Sélectionnez' and 'selectionnez' compare equal."""
    decomposed = unicodedata.normalize("NFD", word.lower())
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


_VERB_SET = {_fold(v) for words in _VERBS.values() for v in _words(words)}
_LEAD_IN_SET = {_fold(w) for w in _words(_LEAD_INS)}


def is_verb(word: str, next_word: str = "") -> bool:
    """Whether `word` opens an imperative, by list or heuristic (see the module docstring)."""
    word = _fold(word.strip("\"'“”«».,:;!?()[]"))
    if not word:
        return False
    parts = word.split("-")
    candidates = {word, parts[0], parts[-1]}
    for part in list(candidates):
        for clitic in _CLITICS:  # Repítela -> repite, Identifícate -> identifica
            if part.endswith(clitic) and len(part) > len(clitic) + 2:
                candidates.add(part[: -len(clitic)])
    if candidates & _VERB_SET:
        return True
    if parts[0].endswith("ez") and len(parts[0]) > 4:  # French vous-imperative: Cliquez, Saisissez
        return True
    return next_word.strip(",.") == "Sie"  # German formal imperative: Tippen Sie


def first_action_word(step: str) -> tuple[str, str]:
    """The word that should be the verb, and the word after it, skipping please and a lead-in clause."""
    text = step.strip().lstrip("-*•0123456789.) ")
    for please in _PLEASE:
        if _fold(text).startswith(please):
            text = text[len(please) :].lstrip(" ,")
    words = text.split()
    if words and _fold(words[0].strip(",")) in _LEAD_IN_SET and "," in text:
        words = text.split(",", 1)[1].split()
    if len(words) > 1 and _fold(words[0]) in ("ne", "n'"):  # French negative: Ne cliquez pas
        words = words[1:]
    return (words[0] if words else "", words[1] if len(words) > 1 else "")


def _latin_only(step: str) -> bool:
    """Whether every letter outside quoted labels is Latin: the verb lists cover only Latin-script
    languages, so a step in Arabic, Cyrillic, Devanagari, Han or kana is not held to them."""
    letters = [ch for ch in _QUOTED.sub('""', step) if ch.isalpha()]
    return all("LATIN" in unicodedata.name(ch, "") for ch in letters)


def _check_steps(steps: list[str], max_steps: int) -> list[Violation]:
    found = []
    if len(steps) > max_steps:
        found.append(Violation("max_steps", "steps", f"has {len(steps)} steps; use at most {max_steps}"))
    for i, step in enumerate(steps):
        word, after = first_action_word(step)
        if _latin_only(step) and not is_verb(word, after):
            found.append(Violation("imperative", f"steps[{i}]", f"starts with {word!r}, not a verb"))
        if _CHAINED.search(_QUOTED.sub('""', step)):
            found.append(Violation("one_action", f"steps[{i}]", "chains actions; split it into two steps"))
    return found


def _wordy(text: str) -> bool:
    """Two words or more, counting only words with letters in them."""
    return sum(any(c.isalpha() for c in w) for w in text.split()) >= 2


def _check_validation(output: dict[str, Any]) -> list[Violation]:
    steps = {_fold(s).strip(" .") for s in output["steps"]}
    real = [v for v in output["validation"] if _wordy(v) and _fold(v).strip(" .") not in steps]
    if real:
        return []
    return [Violation("validation", "validation", "add a check the user can do to confirm it worked")]


def _strings(output: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for key, value in output.items():
        if isinstance(value, str) and key not in ("schema", "category"):
            out.append((key, value))
        elif isinstance(value, list):
            out += [(f"{key}[{i}]", v) for i, v in enumerate(value)]
    return out


def _check_pii(output: dict[str, Any], region: str | None) -> list[Violation]:
    found = []
    for where, text in _strings(output):
        if redact(text, region) != text:
            found.append(Violation("pii", where, "holds personal data; use a placeholder such as <EMAIL>"))
    return found


def allowed_entities(intent: str, context: dict[str, Any] | None) -> set[str]:
    """The allow-list: entities the intent or context name, their vendors' brands, the platform's vendor."""
    context = context or {}
    values = [v if isinstance(v, str) else " ".join(v) for v in context.values() if v]
    text = " ".join([intent, *values])
    allowed = {b for b in _BRAND_NAMES if _mentions(b, text)}
    platform = _fold(str(context.get("platform", "")))
    for family, names in _FAMILY_NAMES.items():
        if PLATFORM_FAMILIES.get(platform) == family or any(_mentions(n, text) for n in names):
            allowed.update(names)
    return allowed | (_BROWSERS if platform == "web" else set())


def _mentions(name: str, text: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", text, re.IGNORECASE) is not None


def _check_entities(output: dict[str, Any], intent: str, context: dict[str, Any] | None) -> list[Violation]:
    allowed = allowed_entities(intent, context)
    names = set(_BRAND_NAMES) | {n for ns in _FAMILY_NAMES.values() for n in ns}
    found = []
    for key in _ENTITY_FIELDS:
        for i, value in enumerate(output[key]):
            for name in sorted(names - allowed):
                # Case-sensitive here: "edge case" is not Microsoft Edge.
                if re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", _QUOTED.sub('""', value)):
                    msg = f"names {name!r}, which the intent and context do not"
                    found.append(Violation("foreign_entity", f"{key}[{i}]", msg))
    return found


def check(
    output: dict[str, Any], intent: str, context: dict[str, Any] | None, *, max_steps: int
) -> list[Violation]:
    """Every rule a schema-valid procedure breaks; empty when it passes (and always for refusals)."""
    if is_refusal(output):
        return []
    return (
        _check_steps(output["steps"], max_steps)
        + _check_validation(output)
        + _check_pii(output, region_of(context))
        + _check_entities(output, intent, context)
    )


def revision_message(violations: list[Violation]) -> str:
    """The user turn asking for a revision: each violation on its own line, then the instruction."""
    lines = ["Your answer breaks these rules:"]
    lines += [f"- {v.where}: {v.message} (rule: {v.rule})" for v in violations]
    lines.append("Reply with the corrected JSON object only.")
    return "\n".join(lines)
