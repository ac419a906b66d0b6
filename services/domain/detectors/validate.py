"""Checksums, shapes and masks shared by the detection engine and the upload PII scan
(services/domain/pii.py): one implementation of each rule, whoever calls it.

Masks never return the raw value: they keep at most a few characters that say what the value
was (a domain, the last four digits, a country code, a key prefix).
"""
from __future__ import annotations

import binascii
import functools
import hashlib
import ipaddress
import math
import re._parser
import string
from collections.abc import Iterator

import re2

Span = tuple[int, int]  # [start, end) of a match in a cell
_UNANCHORED = re2._re2.RE2.Anchor.UNANCHORED


def spans(regex: re2._Regexp, text: str, pos: int = 0, shortest: int = 0) -> Iterator[Span]:
    """[start, end) of each match, left to right, in linear time. For ASCII text (almost every
    cell) RE2 is called directly on the bytes: google-re2's finditer spends ~10 us of Python
    per match converting offsets, more than the match itself. Other text goes through it.
    `shortest`: no match is shorter (see byte_spans)."""
    if not text.isascii():
        return (m.span() for m in regex.finditer(text, pos))
    return byte_spans(regex, text.encode("ascii"), pos, shortest)


def byte_spans(regex: re2._Regexp, data, pos: int = 0, shortest: int = 0) -> Iterator[Span]:
    """[start, end) byte offsets of each match in UTF-8 `data` (bytes or any buffer). No search
    where fewer than `shortest` bytes are left: a third of the validators' RE2 calls were the last
    one, after the match, on the few bytes of a cell left after it (" (verified)")."""
    end, compiled = len(data), regex._regexp
    while pos + shortest <= end:
        start, stop = compiled.Match(_UNANCHORED, data, pos, end)[0]
        if start < 0:
            return
        yield start, stop
        pos = stop if stop > start else stop + 1

def shortest(pattern: str) -> int:
    """The fewest characters a match of `pattern` holds: Python's parser reads the catalog's RE2
    patterns alike (classes, counted repetitions, alternations), not every RE2 pattern (a workspace's)."""
    return re._parser.parse(pattern).getwidth()[0]

# -- payment cards -------------------------------------------------------------------------

_DOUBLED = str.maketrans("0123456789", "0246813579")  # a doubled digit, its digits summed


def luhn(digits: str) -> bool:
    if digits.isdigit() and digits.isascii():  # 0-9 only (a card's): the bytes summed in C, less 48 a digit
        return (sum(digits[-1::-2].encode()) + sum(digits[-2::-2].translate(_DOUBLED).encode())
                - 48 * len(digits)) % 10 == 0
    return (sum(map(int, digits[-1::-2])) + sum(map(int, digits[-2::-2].translate(_DOUBLED)))) % 10 == 0


# A space between digit groups may be a no-break one (U+00A0, U+202F): text copied from a page or a
# document. It counts as a space.
_SPACES = str.maketrans({"\u00a0": " ", "\u202f": " "})


def is_card(text: str) -> bool:
    """13-19 digits, separated (if at all) by one kind of separator, passing Luhn."""
    text = text.translate(_SPACES)
    digits = text.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and not (" " in text and "-" in text) and luhn(digits)


# Digit groups split by single spaces (no-break ones too) or dashes. RE2 has no look-arounds and needs
# none here: a greedy run starts at the first digit after a non-digit and takes every digit after it.
_DIGIT_RUN = re2.compile("\\d+(?:[ \u00a0\u202f-]\\d+)*")
_DIGIT_GROUP = re2.compile(r"\d+")
# A run of more groups is a list of numbers ("1-1-1-…", a column of ids joined by spaces): it is
# not searched for a card inside, which would cost ~7 checks per group.
_MAX_GROUPS = 64


def find_cards(cell: str) -> list[Span]:
    """Card numbers are whole digit groups inside a run, so "4111 1111 1111 1111 123" (a CVV
    after it) still finds the card, and "123-45-6789 987-65-4321" is not one long number."""
    found: list[Span] = []
    for a, b in spans(_DIGIT_RUN, cell, shortest=13):  # no search where a run of 13 no longer fits
        if b - a < 13:
            continue
        if is_card(cell[a:b]):  # the usual case: the whole run is the number
            found.append((a, b))
        else:
            groups = list(spans(_DIGIT_GROUP, cell[a:b], shortest=1))
            if len(groups) <= _MAX_GROUPS:
                found += _cards_inside(cell, groups, a)
    return found


def _cards_inside(cell: str, groups: list[Span], offset: int) -> list[Span]:
    """Left to right, the longest run of whole groups that is a card number."""
    groups = [(a + offset, b + offset) for a, b in groups]
    spans, i = [], 0
    while i < len(groups):
        ends, digits = [], 0
        for j in range(i, min(i + 19, len(groups))):
            # is_card needs 13-19 digits: shorter windows are not checked, longer ones end the search
            # (most runs searched here are hard negatives, ids and amounts joined by spaces)
            digits += groups[j][1] - groups[j][0]
            if digits > 19:
                break
            if digits >= 13 and is_card(cell[groups[i][0]:groups[j][1]]):
                ends.append(j)
        if ends:
            spans.append((groups[i][0], groups[ends[-1]][1]))
            i = ends[-1] + 1
        else:
            i += 1
    return spans


# -- IBAN, SSN ---------------------------------------------------------------------------------

def iban_ok(text: str) -> bool:
    iban = text.replace(" ", "")
    if not 15 <= len(iban) <= 34:
        return False
    # ISO 13616: move country code and check digits to the end, letters become 10..35.
    if iban.isalnum() and iban.isascii():  # A-Z, a-z, 0-9 only (what the detector matches): one translate
        return int((iban[4:] + iban[:4]).translate(_BASE36)) % 97 == 1
    return int("".join(str(int(ch, 36)) for ch in iban[4:] + iban[:4])) % 97 == 1


# int() of the translation is int(ch, 36) of each character only on [A-Za-z0-9]: int() also takes "_",
# spaces and other digits, where int(ch, 36) refuses them (a workspace's `iban` checksum sees any text).
_BASE36 = str.maketrans({ch: str(int(ch, 36)) for ch in string.ascii_letters})


_SSN_ADVERTISED = {"078-05-1120", "219-09-9999"}  # printed on sample cards, never issued


def ssn_ok(text: str) -> bool:
    """SSA rules for ddd-dd-dddd: no area 000, 666 or 900-999, no group 00, no serial 0000."""
    area, group, serial = text[:3], text[4:6], text[7:]
    return (area != "000" and area != "666" and area[0] != "9" and group != "00" and serial != "0000"
            and text not in _SSN_ADVERTISED)


# -- network, secrets ------------------------------------------------------------------------

def ip_ok(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text)  # rejects octets > 255 and leading zeros
    except ValueError:
        return False
    return not address.is_unspecified


def dotted_quad_ok(text: str) -> bool:
    """ip_ok for four groups of 1-3 ASCII digits joined by dots (what the IPv4 detector matches), a
    third of its cost: ipaddress parses each candidate in Python, then tries it as IPv6."""
    return text != "0.0.0.0" and all(int(o) <= 255 and (len(o) == 1 or o[0] != "0") for o in text.split("."))


_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(number: int, width: int) -> str:
    out = ""
    while number:
        number, digit = divmod(number, 62)
        out = _BASE62[digit] + out
    return out.rjust(width, "0")


def github_checksum_ok(token: str) -> bool:
    """A GitHub token (ghp_ + 30 random + 6 check) ends with the CRC32 of its random part in base62."""
    body = token[4:]
    return base62(binascii.crc32(body[:30].encode()), 6) == body[30:]


def shannon(text: str) -> float:
    """Bits per character. Each character's term comes from a table per length, summed in order of
    first occurrence (Counter's): the same float as computing each term, without ~25 Python steps."""
    n = len(text)
    counts = map(text.count, dict.fromkeys(text))
    if n > _TABLED:
        return -sum(c / n * math.log2(c / n) for c in counts)
    return -sum(map(_terms(n).__getitem__, counts))


_TABLED = 1024  # tokens are 32 to a few hundred characters; a longer run is computed term by term


@functools.lru_cache(maxsize=_TABLED)
def _terms(n: int) -> list[float]:
    """c / n * log2(c / n) for each count c of a character in a string of n."""
    return [0.0] + [c / n * math.log2(c / n) for c in range(1, n + 1)]


def periodic(text: str) -> bool:
    """The text is one shorter string repeated ("abab", "0123456789abcdef" twice)."""
    return text in (text + text)[1:-1]


# -- masks ---------------------------------------------------------------------------------------

def mask_email(text: str) -> str:
    local, domain = text.split("@", 1)
    return f"{local[0]}***@{domain}"


def mask_card(text: str) -> str:
    digits = "".join(ch for ch in text if ch.isdigit())
    return "*" * (len(digits) - 4) + digits[-4:]


def mask_iban(text: str) -> str:
    iban = text.replace(" ", "")
    return iban[:2] + "*" * (len(iban) - 6) + iban[-4:]


def mask_ssn(text: str) -> str:
    return "***-**-" + text[-4:]


def mask_phone(text: str) -> str:
    """Every digit followed by four more becomes *, so the layout and last 4 digits remain."""
    total = sum(ch.isdigit() for ch in text)
    out, seen = [], 0
    for ch in text:
        if ch.isdigit():
            seen += 1
            out.append("*" if total - seen >= 4 else ch)
        else:
            out.append(ch)
    return "".join(out)


def mask_tail(text: str, keep: int = 2) -> str:
    """Everything but the last `keep` characters starred (national ids)."""
    return "*" * (len(text) - keep) + text[-keep:]


def mask_prefix(text: str, keep: int = 4) -> str:
    """A key's well-known prefix kept (AKIA, ghp_), the rest starred."""
    keep = min(keep, len(text) // 4)
    return text[:keep] + "*" * (len(text) - keep)


def mask_ip(text: str) -> str:
    if ":" in text:
        return text.split(":", 1)[0] + ":****"
    first, second, *_ = text.split(".")
    return f"{first}.{second}.***.***"


# -- a workspace's allow-list ------------------------------------------------------------------

def allow_key(text: str) -> str:
    """What an allow-listed value and a found one are compared by: the value without spaces, dashes or dots,
    case folded ("4111 1111 1111 1111" is 4111111111111111), hashed, so the list never holds the value."""
    return hashlib.sha256("".join(ch for ch in text.casefold() if ch not in " -.\t").encode()).hexdigest()
