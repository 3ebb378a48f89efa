"""Rule-based safety layer: unsafe intents get a schema-valid refusal before any model runs.

Each rule is a regular expression over the intent (lowercased, in the dataset languages where the
cue is a word) tagged with one category of the schema's `refusal.category` enum:

- account_takeover: getting into another person's account (an ex's, a partner's, a coworker's).
- security_bypass: getting past 2FA, verification codes, activation locks, screen-time passcodes,
  anti-cheat. Turning off 2FA on one's own account is not a bypass and is not matched.
- paywall_bypass: paywalls, premium content without paying, cracked or pirated copies.
- fraud: fake documents and reviews, phishing and lookalike pages, stolen cards, false disputes,
  structuring cash.
- stalking: tracking, reading or watching someone covertly ("without her knowing", "sin que se
  entere", "sans qu'elle le sache"...), hidden cameras and trackers, finding where someone lives.
- malware: writing keyloggers, ransomware, trojans, stealers; capturing keystrokes; stealing
  cookies or sessions.
- harassment: doxxing, mass reporting, threats, evading blocks to keep contacting someone.
- other_harm: weapons and explosives.

The rules favour precision: a miss still meets the fine-tuned model, which refuses by itself
(those refusals are passed through and marked refused_by="model"), while a false refusal cannot be
undone. tests/run/test_run_safety.py holds the rules to zero refusals over the dataset's own
procedure intents.
"""

from __future__ import annotations

import re
from typing import Any

from data.schema import load_schema

_OTHER = (
    r"(?:my (?:ex(?:-wife|-husband|-girlfriend|-boyfriend)?|wife|husband|girlfriend|boyfriend|partner|"
    r"spouse|boss|manager|coworker|co-worker|colleague|roommate|flatmate|neighbou?r|sister|brother|"
    r"daughter's friend|son's friend|teacher|employee)(?:'s)?|someone else's|another person's|"
    r"other people's|(?:his|her|their) (?:\w+ ){0,2}(?:account|phone|email|inbox|messages|password))"
)
_COVERT = (
    r"(?:without (?:her|him|them|my \w+|anyone|the owner)? ?(?:knowing|noticing|finding out|"
    r"being notified|getting (?:a |the )?(?:notification|alert))|"
    r"so (?:she|he|they) (?:doesn't|don't|won't|can't) (?:notice|know|find out|see)|"
    r"secretly|quietly|covertly|behind (?:her|his|their) back|"
    r"without (?:it|the \w+) (?:chiming|lighting|notifying)|"
    r"(?:sin|no quiero) que (?:se entere|lo sepa|le (?:llegue|salga)|ella|él)|"
    r"sans qu'(?:il|elle)s? (?:le sache|s'en aper|remarque|apparaisse)|"
    r"ohne dass (?:er|sie|es) (?:es )?(?:merkt|mitbekommt|weiß)|sem que (?:ele|ela) (?:saiba|perceba)|"
    r"senza che (?:lui|lei) (?:lo sappia|se ne accorga))"
)
# Someone close (in the dataset languages) and what one might watch of theirs: with a covert cue,
# together they make stalking.
_PERSON = (
    r"\b(?:ex|wife|husband|girlfriend|boyfriend|partner|spouse|roommate|coworker|colleague|"
    r"daughter's friend|novia|novio|pareja|esposa|esposo|mujer|marido|compañera|compañero|femme|mari|"
    r"copine|copain|collègue|frau|mann|freundin|freund|kollegin|kollege|namorada|namorado|ragazza|"
    r"ragazzo|moglie|marito|collega)\b"
)
_WATCHED = (
    r"\b(?:messages|location|whereabouts|camera|microphone|photos|history|chats|dms|emails|calls|inbox|"
    r"gps|mensajes|correos|ubicación|micrófono|cámara|localisation|nachrichten|standort|mensagens|"
    r"localização|messaggi|posizione|whatsapp)\b"
)
_BYPASS = r"(?:bypass|get (?:past|around)|circumvent|skip|defeat|crack|umgehen|contourner|saltar\w*|burlar|"
_BYPASS += r"eludir|pular|aggirare)"
_FREE = r"(?:for free|without paying|sin pagar|sans payer|ohne (?:zu )?(?:bezahlen|zahlen)|sem pagar|"
_FREE += r"senza pagare)"
_PAID = r"(?:premium|netflix|disney|hbo|spotify|subscription|movies|series)"
_MAKE = r"(?:write|make|create|build|code|develop|program|escribir|crear|créer|écrire|erstellen|schreiben|"
_MAKE += r"criar|fazer|scrivere|creare)"
_RULES: list[tuple[str, str]] = [
    (
        "account_takeover",
        rf"\b(?:hack|break into|get into|log ?in(?:to)?|sign in(?:to)?|access|take over)\b"
        rf".{{0,40}}{_OTHER}",
    ),
    ("account_takeover", r"\b(?:have|know|got|saved)\b.{0,40}\b(?:his|her|their)\b.{0,25}\bpassword"),
    (
        "account_takeover",
        r"\b(?:hack(?:ear)?|pirater|hacken)\b.{0,30}"
        r"\b(?:account|cuenta|compte|konto|conta|instagram|facebook|email|gmail)",
    ),
    (
        "account_takeover",
        r"\b(?:entrar?|entro|acceder) (?:a|en) (?:su|el \w+ de mi) "
        r"(?:cuenta|correo|facebook|instagram|whatsapp)",
    ),
    (
        "security_bypass",
        rf"\b{_BYPASS}\b.{{0,40}}\b(?:2fa|two[- ]factor|2-step|two-step|mfa|sms code|"
        r"verification|captcha|activation lock|icloud lock|frp|screen ?time|passcode|anti-?cheat|vanguard|"
        r"steam guard|code screen|the code)",
    ),
    (
        "security_bypass",
        r"\b(?:found|find) (?:an? )?(?:iphone|phone|ipad|laptop)\b.{0,80}"
        r"\b(?:activation lock|apple id|unlock|passcode)",
    ),
    ("paywall_bypass", rf"\b(?:{_BYPASS}|remove)\b.{{0,30}}\bpaywall"),
    ("paywall_bypass", rf"\b{_FREE}\b.{{0,40}}\b{_PAID}|\b{_PAID}\b.{{0,40}}\b{_FREE}\b"),
    ("paywall_bypass", r"\b(?:cracked|pirated|pirate) (?:version|copy|apk|app|game|account)s?\b"),
    (
        "fraud",
        rf"\b(?:{_MAKE}|generate|post|buy|need|print|forge|hacer|faire|fare)\b.{{0,30}}"
        r"\b(?:fake|forged?|counterfeit|falsos?|falsas?|faux|fausses?|gefälschte?n?|falso|falsa)\b"
        r".{0,20}\b(?:reviews?|receipts?|invoices?|pay ?stubs?|id|ids|doctor's note|certificates?|"
        r"documents?|facturas?|recibos?|justificatifs?|rechnungen?|ausweis|certificado|certificato)",
    ),
    (
        "fraud",
        r"\bphishing\b|\b(?:lookalike|look-alike|spoof(?:ed)?) (?:domain|email|login|page|site)|"
        r"\bcopy of the .{0,30}login page|\bpage that saves (?:whatever|what) people type",
    ),
    (
        "fraud",
        r"\b(?:stolen|someone else's|found) (?:credit |debit )?card|card numbers? with cvvs?|"
        r"carte bancaire par terre",
    ),
    (
        "fraud",
        r"\blooks? (?:exactly )?like it'?s from\b|\bsay I'm (?:him|her)\b|"
        r"\bpretend (?:to be|I'm) (?:him|her|someone)",
    ),
    (
        "fraud",
        r"\b(?:with|using) (?:his|her|their|someone else's) (?:driver's )?"
        r"(?:license|licence|id|passport|ssn)\b",
    ),
    ("fraud", r"\b(?:launder|structur(?:e|ing) (?:the )?(?:deposits|cash)|under 10k|caja vacía|empty box)\b"),
    (
        "stalking",
        rf"\b(?:track|trace|locate|spy on|stalk|monitor|read|see|watch|listen to|follow)\b"
        rf".{{0,60}}{_COVERT}",
    ),
    ("stalking", rf"{_COVERT}.{{0,60}}\b(?:track|location|messages|whatsapp|camera|microphone|see where)\b"),
    ("stalking", rf"^(?=.*{_PERSON})(?=.*{_COVERT})(?=.*{_WATCHED})"),
    (
        "stalking",
        r"\b(?:spy on|stalk|stalking|espiar|espionner|ausspionieren|spiare)\b|"
        r"\bhide (?:a|the|my) (?:camera|cam|nest cam|tracker|airtag|gps)",
    ),
    (
        "stalking",
        r"\b(?:find|get|pull|figure out|grab)\b.{0,40}"
        r"(?:\b(?:their|her|his)|(?:streamer|user|player|person|girl|guy|woman|man)'s) ip\b",
    ),
    (
        "stalking",
        r"\b(?:find|figure out)\b.{0,40}"
        r"\b(?:where (?:she|he|they) (?:actually )?lives?|(?:her|his|their) home address)\b",
    ),
    (
        "malware",
        rf"\b{_MAKE}\b.{{0,40}}"
        r"\b(?:keylogger|ransomware|trojan|botnet|rootkit|spyware|info-?stealer|stealer|malware|virus|worm)\b",
    ),
    (
        "malware",
        r"\b(?:capture|record|log|grab)s? (?:every|all) keystrokes?|\bkeylogger\b|"
        r"\b(?:grab|steal)s? .{0,25}\b(?:cookies?|session|tokens?|passwords)\b|\bddos\b",
    ),
    (
        "harassment",
        r"\bdox+(?:x)? (?:her|him|them|someone|this|that)\b|\bhow (?:do i|to|can i) dox|"
        r"\bmass[- ]report|\bsend (?:her|him|them) threats?|\bthreaten (?:her|him|them)\b",
    ),
    (
        "harassment",
        r"\bblocked me\b.{0,80}"
        r"\b(?:new accounts?|second account|another account|keep (?:replying|messaging|contacting))",
    ),
    ("harassment", r"\b(?:harass|acosar|harceler|belästigen|assediar|molestare)\b"),
    ("other_harm", r"\b(?:make|build|buy)\b.{0,20}\b(?:bomb|explosive|ghost gun|untraceable gun)\b"),
]
_COMPILED = [(cat, re.compile(pattern, re.IGNORECASE | re.DOTALL)) for cat, pattern in _RULES]

_REASONS = {
    "account_takeover": "I can't help with getting into someone else's account: only its owner can sign in "
    "or recover it.",
    "security_bypass": "I can't help with getting around a security check such as two-factor codes, "
    "verification or device locks.",
    "paywall_bypass": "I can't help with getting paid content or features without paying for them.",
    "fraud": "I can't help with this because it would deceive a company or a person to get money, goods "
    "or access.",
    "stalking": "I can't help with watching, tracking or reading someone's data without their knowledge "
    "and consent.",
    "malware": "I can't help with building software that captures people's data or takes over their devices.",
    "harassment": "I can't help with contacting or exposing someone who has chosen not to hear from you.",
    "other_harm": "I can't help with this because it could put people at risk of serious harm.",
}
_ALTERNATIVES = {
    "account_takeover": [
        "Ask the account owner to share what you need.",
        "Use the app's official recovery flow for your own account.",
    ],
    "security_bypass": [
        "Ask the person who controls the check to complete it.",
        "Contact the service's official support.",
    ],
    "paywall_bypass": ["Look for the service's free tier, trial or library access."],
    "fraud": ["Contact the company's support to resolve the problem honestly."],
    "stalking": [
        "Talk to the person directly.",
        "Use sharing features both people agree to, such as family location sharing.",
    ],
    "malware": ["Use approved monitoring tools with the users' informed consent."],
    "harassment": ["Respect the block.", "Report real abuse through the platform's reporting tools."],
    "other_harm": ["If someone is in danger, contact local emergency services."],
}
# Other languages get one general reason and alternative (the intent's language, see detect_language).
_LOCAL = {
    "es": (
        "No puedo ayudar con esto: podría dañar a otra persona o saltarse una protección.",
        "Usa el proceso oficial de la app o contacta con su soporte.",
    ),
    "fr": (
        "Je ne peux pas aider : cela pourrait nuire à quelqu'un ou contourner une protection.",
        "Utilisez la procédure officielle de l'app ou contactez son support.",
    ),
    "de": (
        "Dabei kann ich nicht helfen: Es könnte jemandem schaden oder einen Schutz umgehen.",
        "Nutze den offiziellen Weg der App oder wende dich an ihren Support.",
    ),
    "pt": (
        "Não posso ajudar com isso: pode prejudicar outra pessoa ou contornar uma proteção.",
        "Use o processo oficial do app ou fale com o suporte.",
    ),
    "it": (
        "Non posso aiutarti: potrebbe danneggiare qualcuno o aggirare una protezione.",
        "Usa la procedura ufficiale dell'app o contatta l'assistenza.",
    ),
}
_STOPWORDS = {
    "es": "el la los las que de mi mis cómo como para por sin una con se puedo quiero",
    "fr": "le la les de des mon ma mes comment pour sans une avec je est que qu'elle",
    "de": "der die das und ich mein meine wie ohne ein eine mit nicht ist kann",
    "pt": "o a os as de do da meu minha como para sem uma com não eu posso quero",
    "it": "il lo la gli le di del mio mia come per senza una con non io posso voglio",
}


def categories() -> list[str]:
    """The refusal categories, from data/schema.json."""
    return list(load_schema()["$defs"]["refusal"]["properties"]["category"]["enum"])


def match(intent: str) -> str | None:
    """The category of the first rule the intent matches, or None when no rule does."""
    for category, pattern in _COMPILED:
        if pattern.search(intent):
            return category
    return None


def detect_language(intent: str, context: dict[str, Any] | None = None) -> str:
    """The reply language: the context locale's language, else the intent's by stopwords, else 'en'."""
    locale = (context or {}).get("locale") or ""
    if locale[:2] in _LOCAL or locale[:2] == "en":
        return locale[:2]
    words = re.findall(r"[\w']+", intent.lower())
    hits = {lang: sum(w in stops.split() for w in words) for lang, stops in _STOPWORDS.items()}
    best = max(hits, key=hits.get)
    return best if hits[best] >= 2 and hits[best] > len(words) // 10 else "en"


def refusal(category: str, language: str = "en") -> dict[str, Any]:
    """A schema-valid refusal for `category`, in `language` when the layer has text for it."""
    if category not in categories():
        raise ValueError(f"unknown refusal category {category!r}; the schema allows {categories()}")
    if language in _LOCAL:
        reason, alternative = _LOCAL[language]
        return {"schema": "refusal", "category": category, "reason": reason, "alternatives": [alternative]}
    return {
        "schema": "refusal",
        "category": category,
        "reason": _REASONS[category],
        "alternatives": list(_ALTERNATIVES[category]),
    }


def screen(intent: str, context: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """A refusal when a rule matches the intent, else None."""
    category = match(intent)
    return None if category is None else refusal(category, detect_language(intent, context))
