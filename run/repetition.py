"""Repetition in an answer: items that copy an earlier item, and words that loop inside one item.

Pure logic, shared by the decoder (which rolls such text back while it decodes) and the eval
(which counts what is left). `Layout` reads the answer's JSON bytes as they grow and says where
each array item starts and ends, so the decoder can act on whole items.

The thresholds come from the authored answers in data/raw (516 procedures, 6,350 items):
- Items. After `normalize`, no gold item equals an earlier item of its answer. 22 did ("Click
  "Next"" twice in one flow) and were rewritten to say what each click does, since a reader cannot
  tell a deliberate repeat from a loop, and the decoder rolls every copy back. Among items that
  differ, the most similar pair in any answer scores 96.8 (rapidfuzz ratio: "right click the
  column c header" / "... d header"); the p99 of each answer's closest pair is 91.
  `SIMILAR` = 97 therefore flags no distinct gold pair, and still catches copies that differ by a
  character or two in a long item.
- Runs of variations. A model also writes one item over and over with a word changed ('Tap
  "Set TOTP 2FA"', 'Tap "Set the TOTP 2FA code"', 'Tap "Set TOTP 2FA code"': 86 and 91 against
  the first two); each pair scores below 97, and pairs that close are common in the gold too
  ('Click "Share"' / 'Click "Save"' score 85.7; 31 gold items score 85 or more against an
  earlier one). What the gold never has is an item that close to two earlier ones: at `NEAR` =
  85, an item within it of two or more earlier items counts as a copy of each, and that flags no
  gold item (at 80, one: 'Adicione a lista "Feito"' after "A fazer" and "Fazendo"). The default
  export's answers to the test split had 36 such items in 15 of 61 answers.
- Loops. `looping` fires on the same word three times in a row, a 2-word n-gram three times, a
  3- to 10-word n-gram twice in a row, or a word of five or more letters twice with only spaces
  between ("card card" is legal, "Profile Profile" is not). It also fires on 1 to 4 characters
  repeated eight times in a row, inside a word or not ("ৰৰৰৰৰৰৰৰ", which grows as one endless
  word that the word rules never see end); the longest such run in the gold is seven
  ("<<<<<<<" of a merge conflict), then six ("000000"). No gold item trips it. Looser rules do
  (counted on the first 560 records):
  any word twice in a row ("2024-01-01", "sign-in in", "export; export") trips 28 gold items,
  a short word twice with a space between trips 4 ("vous vous", "sign-in in"), and any 3-gram
  seen twice in an item trips 12.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

SIMILAR = 97.0  # rapidfuzz ratio (0-100) from which an item counts as a copy; see the docstring
NEAR = 85.0  # ... and from which it does when that close to two or more earlier items (docstring)
_WORD = re.compile(r"\w+")
# (n-gram length, repeats in a row that make a loop); see the docstring for the gold counts
_LOOPS = ((1, 3), (2, 3)) + tuple((n, 2) for n in range(3, 11))
_DOUBLED = re.compile(r"\b(\w{5,})\s+(\1)\b", re.IGNORECASE)
# 1 to 4 characters, then seven more copies of them, at the end of the text; see the docstring
_RUN = re.compile(r"(.{1,4}?)\1{7,}\Z", re.DOTALL)
_RUN_TAIL = 512  # characters searched for it: a run is caught while it grows, long before this


# A leading enumerator ("1. ", "2) ", "- ", "• "): items that differ only by it are copies, as
# in "1. PayPal refunds your money." followed by "2. PayPal refunds your money.".
_ENUMERATOR = re.compile(r"^\s*(?:(?:\d{1,3}|[a-z])[.):]|[-*\u2022])\s+")


def normalize(text: str) -> str:
    """Case, punctuation and whitespace folded away: NFKC, casefold, a leading enumerator
    dropped, non-word runs to one space."""
    text = _ENUMERATOR.sub("", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def similarity(a: str, b: str) -> float:
    """rapidfuzz's normalized Indel similarity (0-100) of two normalized items."""
    from rapidfuzz import fuzz

    return fuzz.ratio(a, b)


def copies(item: str, earlier: list[str]) -> list[bool]:
    """For each earlier item, whether `item` copies it: equal or >= SIMILAR once normalized, or
    >= NEAR where `item` is that close to two or more earlier items (a run of variations)."""
    mine = normalize(item)
    scores = [
        100.0 if mine == (theirs := normalize(other)) else similarity(mine, theirs) for other in earlier
    ]
    run = sum(score >= NEAR for score in scores) >= 2
    return [score >= SIMILAR or (run and score >= NEAR) for score in scores]


def copied(item: str, earlier: list[str]) -> int | None:
    """The index of the first earlier item that `item` copies (`copies`), else None."""
    flags = copies(item, earlier)
    return flags.index(True) if any(flags) else None


def looping(text: str) -> int | None:
    """Where a word loop at the end of `text` starts (a character offset), else None.

    Only complete words count: the last word is ignored unless `text` ends after it. A run of
    the same 1 to 4 characters counts while it grows, even inside a word.
    """
    tail = max(0, len(text) - _RUN_TAIL)
    run = _RUN.search(text, tail)
    if run is not None:
        return run.start() + len(run.group(1))  # the first repeat, so one copy stays
    words = list(_WORD.finditer(text))
    if words and words[-1].end() == len(text):
        words.pop()  # may still grow
    complete = words[-1].end() if words else 0
    doubled = [m for m in _DOUBLED.finditer(text, 0, complete) if m.end() == complete]
    if doubled:
        return doubled[-1].start(2)
    folded = [w.group().casefold() for w in words]
    for n, times in _LOOPS:
        span = n * times
        if len(folded) < span:
            continue
        tail = folded[-span:]
        if all(tail[i] == tail[i % n] for i in range(span)):
            return words[len(words) - span + n].start()  # the first repeat, so one copy stays
    return None


def repeated_items(output: dict) -> tuple[int, int]:
    """(items that repeat an earlier item of the same answer, all items), over every array."""
    items = [item for value in output.values() if isinstance(value, list) for item in value]
    repeats = sum(copied(item, items[:i]) is not None for i, item in enumerate(items))
    return repeats, len(items)


@dataclass
class Item:
    """One string in an array of the answer: its array's key and its byte span (quotes excluded)."""

    key: str
    index: int  # its position in its array
    cut: int  # where the array would close instead: after the previous item, or after '['
    start: int
    end: int | None = None  # None while it is still being written


@dataclass
class _Array:
    """An array still open in the text: its key, its items so far, and where it could close now."""

    key: str
    cut: int  # after '[', then after each item's closing quote
    count: int = 0


@dataclass
class Layout:
    """Where the arrays and their items are in a growing JSON text (bytes); `feed` it as it grows."""

    items: list[Item] = field(default_factory=list)
    size: int = 0
    _stack: list[str] = field(default_factory=list)  # the open '{' and '['
    _arrays: list[_Array] = field(default_factory=list)  # the open '[', innermost last
    _in_string: bool = False
    _escaped: bool = False
    _key: str = ""  # the last object key read: the key of an array that opens next
    _string: bytearray = field(default_factory=bytearray)

    @property
    def open_item(self) -> Item | None:
        """The item being written now, if any."""
        return self.items[-1] if self.items and self.items[-1].end is None else None

    @property
    def settled(self) -> int:
        """Bytes that no item-level rollback can reach: up to where the innermost array could close."""
        item = self.open_item
        if item is not None:
            return item.cut
        return self._arrays[-1].cut if self._arrays else self.size

    def feed(self, data: bytes) -> list[Item]:
        """Read more bytes; returns the items they closed."""
        closed = []
        for byte in data:
            pos, self.size = self.size, self.size + 1
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif byte == 0x5C:  # backslash
                    self._escaped = True
                elif byte == 0x22:  # the closing quote
                    self._in_string = False
                    item = self.open_item
                    if item is not None:
                        item.end = pos
                        closed.append(item)
                        self._arrays[-1].cut = pos + 1
                    else:
                        self._key = self._string.decode("utf-8", "replace")
                if self._in_string:
                    self._string.append(byte)
                continue
            if byte == 0x22:
                self._in_string, self._string = True, bytearray()
                if self._stack and self._stack[-1] == "[":
                    array = self._arrays[-1]
                    self.items.append(Item(array.key, array.count, array.cut, pos + 1))
                    array.count += 1
            elif byte in b"{[":
                self._stack.append(chr(byte))
                if byte == 0x5B:
                    self._arrays.append(_Array(self._key, pos + 1))
            elif byte in b"}]" and self._stack and self._stack.pop() == "[":
                self._arrays.pop()
        return closed
