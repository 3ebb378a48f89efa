"""Step normalisation for step F1: a small rule-based lemmatiser and the UI-verb synonym table.

No NLTK data can be downloaded where stepsmith runs, so lemmas come from the rules below rather
than WordNet. They only need to be consistent (both sides of a comparison go through the same
function), not linguistically exact:

- words are lowercased and accent-folded ("Sélectionnez" -> "selectionnez");
- a short irregular table maps past forms to the base verb ("chose" -> "choose");
- English suffix rules, longest first: -ies -> -y, -sses -> -ss, -ches/-shes/-xes/-zes -> drop
  "es", -ing and -ed dropped (with a doubled final consonant undone: "tapping" -> "tap", and an
  "e" restored when that gives a known verb: "typing" -> "type"), then a plural -s dropped
  (not after s, u or i: "settings" -> "setting", "status" stays).

`verb_object(step)` splits a step into a canonical verb and a set of object lemmas. The verb is
the first word (or two-word phrase) after an optional scene-setting clause ("On the "Log in"
screen, tap ...") and "please"; `UI_VERBS` maps it to its group, so "Tap", "Click", "Press"
and "Select" all become "select" ("Re-enter" counts as "enter"). The object is every other
content word of the step, minus stopwords and UI role nouns ("button", "tab", "screen", "app"),
so 'Tap the "Settings" button' and 'Select "Settings"' have the same verb and object. The table
also covers the imperative forms of the dataset's other languages (pt, de, es, fr, it) for the
commonest actions; other words fall back to their folded lemma, so two steps in one language
still match exactly.
"""

from __future__ import annotations

import re
import unicodedata

# Canonical verb -> the verbs and phrases that mean it in a UI procedure. The groups follow the
# issue's table (tap/click/press/select; open/launch/go to; enter/type/fill in) and extend it to
# the other actions that recur in the authored data.
UI_VERBS: dict[str, str] = {
    "select": """tap|click|press|select|choose|pick|hit|touch|tap on|click on|double-click|double-tap|
        toque|toca|clique|selecione|escolha|pressione|selecciona|pulsa|elige|cliquez|appuyez|touchez|
        selectionnez|choisissez|tocca|clicca|seleziona|premi|scegli|tippe|tippen|klicke|klicken|
        wahle|wahlen|drucke|drucken""",
    "open": """open|launch|go to|go|navigate to|navigate|head to|visit|access|browse to|
        abra|acesse|va|abre|accede|ve|ouvrez|allez|lancez|apri|vai|accedi|offne|offnen|gehe|gehen|
        starte|rufe""",
    "enter": """enter|type|fill in|fill out|input|key in|type in|write|provide|
        digite|insira|preencha|informe|escribe|introduce|rellena|saisissez|entrez|tapez|inserisci|
        scrivi|gib|gebe|geben|trage|tragen""",
    "enable": "enable|turn on|switch on|activate|toggle on|ative|activa|activez|attiva|aktiviere|aktivieren",
    "disable": """disable|turn off|switch off|deactivate|toggle off|desative|desactiva|desactivez|
        disattiva|deaktiviere|deaktivieren""",
    "sign_in": "sign in|log in|login|sign into|log into|entre|inicia|connectez|anmelden|melde",
    "sign_out": "sign out|log out|logout|saia|abmelden",
    "confirm": """confirm|approve|accept|agree|submit|confirme|confirma|confirmez|conferma|
        bestatige|bestatigen""",
    "check": """check|verify|review|look|see|make sure|ensure|view|inspect|verifique|confira|compruebe|
        revisa|verifiez|verifica|controlla|prufe|prufen|uberprufe|uberprufen""",
    "delete": """delete|remove|erase|clear|exclua|remova|apague|elimina|borra|supprimez|
        loschen|losche|entferne""",
    "save": "save|apply|store|salve|guarda|enregistrez|salva|speichere|speichern",
    "find": """find|search|search for|look for|locate|scroll to|scroll down to|scroll|
        procure|busca|suche|cerca""",
    "add": "add|create|new|adicione|crie|anade|crea|ajoutez|creez|aggiungi|fuge|erstelle",
    "close": "close|exit|quit|dismiss|feche|cierra|fermez|chiudi|schliesse",
    "change": "change|edit|update|modify|set|adjust|altere|cambia|modifiez|modifica|andere|bearbeite",
    "restart": "restart|reboot|reload|refresh|reinicie|reinicia|redemarrez|riavvia|neustarten|starte neu",
    "send": "send|share|envie|envia|envoyez|invia|sende|teile",
}
# Past forms of the verbs above that the suffix rules cannot undo.
_IRREGULAR = {"went": "go", "gone": "go", "chose": "choose", "chosen": "choose", "got": "get"}
_IRREGULAR |= {"made": "make", "sent": "send", "written": "write", "wrote": "write", "shown": "show"}
# Words that open a scene-setting clause; the action starts after its comma.
_LEAD_IN_WORDS = """on in under if when from at after once before while within inside
    em no na nos nas se quando depois en si desde cuando dans sous sur depuis quand apres
    auf im unter wenn nach sobald falls sul sulla nella nel dopo"""
_LEAD_INS = set(_LEAD_IN_WORDS.split())
_PLEASE = ("please ", "por favor, ", "por favor ", "bitte ", "per favore ")
# Function words and UI role nouns: they carry no object identity ("the Settings button" and
# "Settings" name the same thing). English plus the commonest pt/es/fr/de/it articles and pronouns.
_STOPWORD_LIST = """a an the your you my it its this that these those to on in of for and or with from at by
    into onto then if is are be there here any all some new should will can may might must would could
    which what who where how so as not do does been has have had was were than also only just very
    button link tab icon option screen page app application field toggle switch menu item entry
    o os as um uma de do da dos das em no na para seu sua e com el la los las un una del y por
    le les des du et ou votre sur der die das den dem des ein eine einen auf im zu und sie ihr
    ihre ihren mit fur von il lo gli uno di della e per"""
STOPWORDS = set(_STOPWORD_LIST.split())
WORD = re.compile(r"[^\W_]+(?:-[^\W_]+)*")
_KNOWN_VERBS = {w.strip() for group in UI_VERBS.values() for w in group.split("|") if " " not in w.strip()}


def fold(text: str) -> str:
    """Lowercase without accents, so 'Sélectionnez' and 'selectionnez' compare equal."""
    decomposed = unicodedata.normalize("NFD", text.lower())
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


def lemma(word: str) -> str:
    """The rule-based lemma of one word (see the module docstring for the rules)."""
    w = fold(word)
    if w in _IRREGULAR or w in _KNOWN_VERBS:
        return _IRREGULAR.get(w, w)
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if w.endswith("sses"):
        return w[:-2]
    if len(w) > 4 and w.endswith(("ches", "shes", "xes", "zes")):
        return w[:-2]
    for suffix in ("ing", "ed"):
        if len(w) > len(suffix) + 2 and w.endswith(suffix):
            stem = w[: -len(suffix)]
            if len(stem) > 2 and stem[-1] == stem[-2] and stem[-1] not in "lsz":
                return stem[:-1]  # tapping -> tap
            return stem + "e" if stem + "e" in _KNOWN_VERBS else stem  # typing -> type
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def _phrase_table() -> dict[str, str]:
    table = {}
    for canonical, group in UI_VERBS.items():
        for phrase in group.split("|"):
            table[fold(phrase.strip())] = canonical
    return table


_PHRASES = _phrase_table()


def _action_text(step: str) -> str:
    """The step from its action on: list markers, 'please' and a leading scene-setting clause removed."""
    text = step.strip().lstrip("-*•0123456789.) ").strip()
    for please in _PLEASE:
        if fold(text).startswith(please):
            text = text[len(please) :]
    words = text.split()
    if words and fold(words[0].strip(",")) in _LEAD_INS and "," in text:
        text = text.split(",", 1)[1]
    return text.strip()


def verb_object(step: str) -> tuple[str, frozenset[str]]:
    """The canonical verb and the set of object lemmas of one step."""
    words = [fold(w) for w in WORD.findall(_action_text(step))]
    if not words:
        return "", frozenset()
    verb, rest = words[0], words[1:]
    if len(words) > 1 and f"{words[0]} {words[1]}" in _PHRASES:  # go to, fill in, turn on
        verb, rest = f"{words[0]} {words[1]}", words[2:]
    if verb.startswith("re-") and verb[3:] in _PHRASES:  # re-enter is entering again
        verb = verb[3:]
    canonical = _PHRASES.get(verb) or _PHRASES.get(lemma(verb)) or lemma(verb)
    objects = frozenset(lemma(w) for w in rest if w not in STOPWORDS and lemma(w) not in STOPWORDS)
    return canonical, objects
