"""The detectors: what each looks for, how a candidate is validated, how it is masked.

Each detector has
- a `prefilter`: an RE2 pattern (the engine runs the union of them over whole batches) that
  matches every cell the detector could find something in, a superset, so cells that fail it
  never reach Python. It is the shortest telling part of the pattern (a key's prefix, not its
  35 characters after it): the union is one DFA, built lazily, and every counted repetition in
  it multiplies its states;
- `find(cell, claimed=())`: exact extraction with google-re2 (linear time: no backtracking, so no
  input can hang a worker; RE2 has no look-arounds, so word boundaries are checked on the
  characters around a match) and validation (checksums, number plans, issuing rules). `claimed`:
  the spans detectors before it took in the cell; a match overlapping one may be left out
  unvalidated, as the engine drops it anyway (a PEM block's body lines are tokens);
- `mask(value)`: what a finding shows instead of the value.

Families group detectors for reporting and for precision/recall: the six cloud-key detectors
are one family, `cloud_key`; the national id detectors are `national_id`.
"""
from __future__ import annotations

import base64
import binascii
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import phonenumbers
import re2
from stdnum import iban as std_iban
from stdnum.br import cpf
from stdnum.es import dni, nie
from stdnum.it import codicefiscale

from services.domain.detectors import validate as v
from services.domain.detectors.validate import Span
from services.domain.regex import re2_error

Hit = tuple[int, int, float]  # [start, end) in the cell, confidence


@dataclass(frozen=True)
class Detector:
    name: str
    family: str
    prefilter: str
    find: Callable[[str, Sequence[Span]], list[Hit]]
    mask: Callable[[str], str]


def _alnum(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _free(cell: str, start: int, end: int, before: str = "", after: str = "") -> bool:
    """No word character (nor one of `before`) touches the match on either side; one of `after`
    touches it only when a word character follows it: "4111111111111111.25" is a decimal, the
    same number ending a sentence ("card 4111 1111 1111 1111.") is a card."""
    if start > 0 and (_alnum(cell[start - 1]) or cell[start - 1] in before):
        return False
    if end >= len(cell):
        return True
    return not (_alnum(cell[end]) or (cell[end] in after and end + 1 < len(cell) and _alnum(cell[end + 1])))


def _overlaps(start: int, end: int, claimed: Sequence[Span]) -> bool:
    # A loop, not any(): a generator to start costs more than the span or two it reads (0.45 -> 0.17 us).
    for a, b in claimed:  # noqa: SIM110
        if start < b and a < end:
            return True
    return False


def _finder(pattern: str, valid: Callable[[str], float | None], before: str = "", after: str = ""):
    """Matches of `pattern` standing free whose `valid` gives a confidence (None: not one)."""
    compiled, shortest = re2.compile(pattern), v.shortest(pattern)

    def find(cell: str, claimed: Sequence[Span] = ()) -> list[Hit]:
        hits = []
        for start, end in v.spans(compiled, cell, shortest=shortest):
            if not (claimed and _overlaps(start, end, claimed)) and _free(cell, start, end, before, after):
                confidence = valid(cell[start:end])
                if confidence is not None:
                    hits.append((start, end, confidence))
        return hits
    return find


# -- email --------------------------------------------------------------------------------------

_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
# "icon@2x.png" is a file name, not an address.
_FILE_TLDS = {"png", "jpg", "jpeg", "gif", "svg", "webp", "css", "js", "ts", "py", "json", "txt", "csv", "pdf"}


def _email(text: str) -> float | None:
    local, domain = text.rsplit("@", 1)
    if local.startswith(".") or local.endswith(".") or ".." in text or domain.rsplit(".", 1)[1].lower() in _FILE_TLDS:
        return None
    return 0.95


# -- phone ----------------------------------------------------------------------------------------

# International (+cc and 6-14 more digits in groups) or a North American number with
# separators. A bare run of digits is never a phone: record ids, amounts, years and 4-digit
# codes all are bare runs.
_PHONE = (r"\+[1-9]\d{0,3}(?:[ .-]?\(?\d{1,5}\)?)(?:[ .-]?\d{1,5}){1,5}"
          r"|(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}")
_PHONE_RE, _PHONE_SHORTEST = re2.compile(_PHONE), v.shortest(_PHONE)


def _find_phones(cell: str, claimed: Sequence[Span] = ()) -> list[Hit]:
    hits = []
    for start, end in v.spans(_PHONE_RE, cell, shortest=_PHONE_SHORTEST):
        text = cell[start:end]
        if not _free(cell, start, end, before="+-./", after="-/") or (end < len(cell) and cell[end] == "."
                                                                        and cell[end + 1:end + 2].isdigit()):
            continue
        for length in _group_ends(text):  # "+1 415 555 0102 12": drop trailing groups until valid
            if _valid_phone(text[:length]):
                hits.append((start, start + length, 0.9 if text.startswith("+") else 0.85))
                break
    return hits


def _group_ends(text: str) -> list[int]:
    ends = [len(text)] + [i for i in range(len(text) - 1, 0, -1) if text[i] in " .-" and text[i - 1].isdigit()]
    return ends[:3]


def _valid_phone(text: str) -> bool:
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else "US")
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)


# -- card, IBAN, SSN, national ids ----------------------------------------------------------------

def _find_cards(cell: str, claimed: Sequence[Span] = ()) -> list[Hit]:
    # Issuer ranges in use start with 2-6 (Mastercard 2-series, Amex/Diners 3, Visa 4,
    # Mastercard 5, Discover/UnionPay 6); a Luhn-valid number outside them is an id.
    return [(a, b, 0.95) for a, b in v.find_cards(cell)
            if cell[a] in "23456" and _free(cell, a, b, before="+.", after=".")]


def _iban(text: str) -> float | None:
    return 0.99 if v.iban_ok(text) and std_iban.is_valid(text) else None


def _ssn(text: str) -> float | None:
    return 0.9 if v.ssn_ok(text) else None


def _national(text: str) -> float | None:
    compact = text.replace("-", "").replace(".", "")
    if len(compact) == 16:
        ok = codicefiscale.is_valid(compact)
    elif "." in text:
        ok = cpf.is_valid(text)
    elif compact[0] in "XYZ":
        ok = nie.is_valid(compact)
    else:
        ok = dni.is_valid(compact)
    return 0.9 if ok else None


# -- network ----------------------------------------------------------------------------------------

_VERSION_WORDS = ("version", "ver", "release", "build", "firmware", "v")


def _find_ipv4(cell: str, claimed: Sequence[Span] = ()) -> list[Hit]:
    hits = []
    for start, end in v.spans(_IPV4_RE, cell, shortest=_IPV4_SHORTEST):
        if not _free(cell, start, end, before=".", after=".") or not v.dotted_quad_ok(cell[start:end]):
            continue
        # "v1.2.3.4", "version 10.0.0.1", "release: 4.2.1.0": a version, not an address.
        before = cell[max(0, start - 12):start].rstrip(" :=\t").lower()
        if before.endswith(_VERSION_WORDS):
            continue
        hits.append((start, end, 0.85))
    return hits


_IPV4 = r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}"
_IPV4_RE, _IPV4_SHORTEST = re2.compile(_IPV4), v.shortest(_IPV4)
_IPV6_RE = re2.compile(r"[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*")


def _find_ipv6(cell: str, claimed: Sequence[Span] = ()) -> list[Hit]:
    hits = []
    for start, end in v.spans(_IPV6_RE, cell):
        text = cell[start:end].rstrip(".")
        end = start + len(text)
        if _free(cell, start, end, after=":") and (text.count(":") >= 7 or "::" in text) and len(text) > 3 \
                and v.ip_ok(text):
            hits.append((start, end, 0.85))
    return hits


# -- secrets ------------------------------------------------------------------------------------------

def _aws(text: str) -> float | None:
    return None if text.endswith("EXAMPLE") else 0.95


def _github(text: str) -> float | None:
    if text.startswith("github_pat_"):
        return 0.95
    return 0.99 if v.github_checksum_ok(text) else 0.7


def _azure(text: str) -> float | None:
    try:
        return 0.95 if len(base64.b64decode(text.split("=", 1)[1], validate=True)) == 64 else None
    except (binascii.Error, ValueError):
        return None


_PRIVATE_KEY_RE = re2.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re2.compile(r"-----END [A-Z0-9 ]*-----")


def _find_private_keys(cell: str, claimed: Sequence[Span] = ()) -> list[Hit]:
    """The header, and the body up to the END line when the cell holds it (a JSON string)."""
    hits = []
    for start, stop in v.spans(_PRIVATE_KEY_RE, cell):
        end = next(v.spans(_PEM_END, cell, stop), None)
        hits.append((start, end[1] if end else stop, 0.99))
    return hits


def _mask_private_key(text: str) -> str:
    kind = text[len("-----BEGIN "):text.index("PRIVATE KEY")].strip()
    return f"[{kind + ' ' if kind else ''}private key block, {len(text)} chars]"


# High-entropy tokens, detect-secrets' idea (Shannon entropy of base64/hex strings) with its
# false positives cut: a token must be long (32+), mix letters and digits, not be one short
# string repeated, and clear a per-alphabet entropy bar that random strings of that length
# clear and identifiers, words, UUIDs and low-entropy hex do not.
_TOKEN = r"[A-Za-z0-9+/_-]{32,}={0,2}"
_TOKEN_RE, _TOKEN_SHORTEST = re2.compile(_TOKEN), v.shortest(_TOKEN)
_HEX = frozenset("0123456789abcdefABCDEF")
# A token is ASCII (_TOKEN_RE's alphabet): which kinds of character it mixes are set operations in C,
# not a Python generator over its characters (~2,500 distinct candidates in bench.detectors' corpus).
_DIGITS, _UPPER, _LOWER = frozenset(string.digits), frozenset(string.ascii_uppercase), frozenset(string.ascii_lowercase)


def _token_confidence(token: str) -> float | None:
    token = token.rstrip("=")
    if v.periodic(token):
        return None
    chars = set(token)
    has_digit = not chars.isdisjoint(_DIGITS)
    if chars <= _HEX:
        if not has_digit or chars <= _DIGITS:
            return None
        return 0.8 if v.shannon(token) >= 3.3 else None
    if not (has_digit and not chars.isdisjoint(_UPPER) and not chars.isdisjoint(_LOWER)):
        return None
    if token.count("/") > 3 and all(part.isalpha() for part in token.split("/") if part):
        return None  # a path
    return 0.8 if v.shannon(token) >= 4.0 else None


def _find_tokens(cell: str, claimed: Sequence[Span] = ()) -> list[Hit]:
    hits = []
    for start, end in v.spans(_TOKEN_RE, cell, shortest=_TOKEN_SHORTEST):
        if claimed and _overlaps(start, end, claimed):
            continue  # a PEM block's body lines, claimed by the private key: no entropy to compute
        if _free(cell, start, end) and (confidence := _token_confidence(cell[start:end])) is not None:
            hits.append((start, end, confidence))
    return hits


# -- the catalog, in the order detectors claim a string -------------------------------------------
# A string one detector claimed is not offered to those after it: a card number is never also
# a phone, an AWS key id never also a high-entropy token.

DETECTORS: list[Detector] = [
    Detector("private_key", "private_key", r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY", _find_private_keys,
             _mask_private_key),
    Detector("aws_access_key_id", "cloud_key", r"A(?:KIA|SIA|BIA|CCA|GPA|IDA|ROA|NPA|NVA|IPA)[A-Z2-7]{4}",
             _finder(r"A(?:KIA|SIA|BIA|CCA|GPA|IDA|ROA|NPA|NVA|IPA)[A-Z2-7]{16}", _aws), v.mask_prefix),
    Detector("gcp_api_key", "cloud_key", r"AIza[0-9A-Za-z_-]",
             _finder(r"AIza[0-9A-Za-z_-]{35}", lambda _: 0.95, after="-"), v.mask_prefix),
    Detector("github_token", "cloud_key", r"gh[pousr]_[A-Za-z0-9]|github_pat_[A-Za-z0-9_]",
             _finder(r"gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82}", _github), v.mask_prefix),
    Detector("slack_token", "cloud_key", r"xox[abposr]-\d+-|hooks\.slack\.com/services/T",
             _finder(r"xox[abposr]-(?:\d+-){1,3}[A-Za-z0-9]{16,64}"
                     r"|https://hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{20,}",
                     lambda _: 0.95, after="-"), v.mask_prefix),
    Detector("azure_storage_key", "cloud_key", r"AccountKey=[A-Za-z0-9+/]",
             _finder(r"AccountKey=[A-Za-z0-9+/]{86}==", _azure), lambda t: "AccountKey=" + "*" * (len(t) - 11)),
    Detector("stripe_secret_key", "cloud_key", r"[rs]k_live_[0-9A-Za-z]",
             _finder(r"[rs]k_live_[0-9A-Za-z]{24,99}", lambda _: 0.95), v.mask_prefix),
    Detector("iban", "iban", r"[A-Z]{2}\d{2} ?[A-Z0-9]{4}",
             _finder(r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?", _iban), v.mask_iban),
    Detector("card_number", "payment_card", "\\d(?:[ \u00a0\u202f-]?\\d){12}", _find_cards, v.mask_card),
    Detector("us_ssn", "ssn", r"\d{3}-\d{2}-\d{4}", _finder(r"\d{3}-\d{2}-\d{4}", _ssn, "-", "-"), v.mask_ssn),
    Detector("national_id", "national_id",
             r"\d{8}-?[A-Z]|[XYZ]-?\d{7}-?[A-Z]|[A-Z]{6}\d\d[A-Z]\d\d[A-Z]\d{3}[A-Z]|\d{3}\.\d{3}\.\d{3}-\d\d",
             _finder(r"\d{8}-?[A-Z]|[XYZ]-?\d{7}-?[A-Z]|[A-Z]{6}\d\d[A-Z]\d\d[A-Z]\d{3}[A-Z]"
                     r"|\d{3}\.\d{3}\.\d{3}-\d\d", _national, "-.", "-."), v.mask_tail),
    Detector("email", "email", r"[A-Za-z0-9._%+-]@[A-Za-z0-9-]", _finder(_EMAIL, _email, after="@"), v.mask_email),
    Detector("phone", "phone", r"\+[1-9]\d|\d{3}\) ?\d{3}[ .-]\d{4}|\d{3}[ .-]\d{3}[ .-]\d{4}", _find_phones,
             v.mask_phone),
    Detector("ipv4", "ip_address", r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}", _find_ipv4, v.mask_ip),
    Detector("ipv6", "ip_address", r"[0-9A-Fa-f]::|::[0-9A-Fa-f]|(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]", _find_ipv6,
             v.mask_ip),
    Detector("high_entropy_token", "high_entropy", r"[A-Za-z0-9+/_-]{32}", _find_tokens,
             lambda t: t[:2] + "*" * (len(t) - 2)),
]

FAMILIES = sorted({d.family for d in DETECTORS})

# What each detector reports and checks beyond its pattern, and the confidences it gives
# (GET /api/v1/detectors): the rules a user needs to trust a finding or to see why a value was not one.
ABOUT: dict[str, tuple[str, tuple[float, ...]]] = {
    "private_key": ("a PEM private key block: its BEGIN line, and its body up to the END line when one value holds it"
                    " (the body lines are never reported again as tokens)", (0.99,)),
    "aws_access_key_id": ("an AWS access key id (AKIA, ASIA… and 16 base-32 characters); AWS's documentation keys,"
                          " ending in EXAMPLE, are not reported", (0.95,)),
    "gcp_api_key": ("a Google API key (AIza and 35 characters)", (0.95,)),
    "github_token": ("a GitHub token (ghp_, gho_, ghu_, ghs_, ghr_ and 36 characters, or github_pat_); a classic"
                     " token whose CRC32 checksum holds is 0.99, one whose checksum fails 0.7", (0.7, 0.95, 0.99)),
    "slack_token": ("a Slack token (xoxb-, xoxp-…) or an incoming-webhook URL", (0.95,)),
    "azure_storage_key": ("an Azure storage AccountKey= whose value decodes to 64 bytes", (0.95,)),
    "stripe_secret_key": ("a Stripe live secret or restricted key (sk_live_, rk_live_)", (0.95,)),
    "iban": ("an IBAN (spaces between groups allowed): its country's length and the ISO 7064 mod-97 checksum",
             (0.99,)),
    "card_number": ("a payment card number: 13-19 digits, spaces or dashes between groups (one kind), an issuer"
                    " prefix 2-6, the Luhn checksum; not part of a longer number or a decimal", (0.95,)),
    "us_ssn": ("a US Social Security number NNN-NN-NNNN by the SSA's rules: no area 000, 666 or 900-999, no group"
               " 00, no serial 0000, not a number the SSA has published as an example", (0.9,)),
    "national_id": ("a Spanish DNI or NIE (check letter), an Italian codice fiscale (check character), a Brazilian"
                    " CPF (check digits)", (0.9,)),
    "email": ("an e-mail address (not a file name such as icon@2x.png)", (0.95,)),
    "phone": ("a phone number, +country code or North American with separators, valid by libphonenumber; a bare"
              " run of digits is never one", (0.85, 0.9)),
    "ipv4": ("an IPv4 address, each part at most 255, not a version number (v1.2.3.4, version 10.0.0.1)", (0.85,)),
    "ipv6": ("an IPv6 address (eight groups, or :: shortened) that parses as one", (0.85,)),
    "high_entropy_token": ("a token of 32+ base64 or hex characters mixing letters and digits with high Shannon"
                           " entropy; not a path, a UUID or a word", (0.8,)),
}
assert set(ABOUT) == {d.name for d in DETECTORS}


def described() -> list[dict]:
    """Every detector, in the order they claim a value."""
    return [{"name": d.name, "family": d.family, "validates": ABOUT[d.name][0], "confidence": list(ABOUT[d.name][1])}
            for d in DETECTORS]


# -- a workspace's own detectors -------------------------------------------------------------------
# An RE2 pattern (no look-arounds or back-references: linear time on any input), optionally a
# built-in checksum on the match, a confidence. They claim values after the built-ins and before
# the high-entropy tokens, so a pattern for an internal key is named as that key, not as a token.

CUSTOM_FAMILY = "custom"
CHECKSUMS: dict[str, Callable[[str], bool]] = {
    "luhn": lambda t: (d := "".join(ch for ch in t if ch.isdigit())) != "" and v.luhn(d),
    "iban": lambda t: v.iban_ok(t.replace(" ", "")) and std_iban.is_valid(t.replace(" ", "")),
}


def custom_detector(spec: dict) -> Detector:
    """{name, pattern, checksum?, confidence}: a Detector (the pattern is one CustomDetector validated)."""
    compiled, check, confidence = re2.compile(spec["pattern"]), CHECKSUMS.get(spec.get("checksum") or ""), \
        spec["confidence"]

    def find(cell: str, claimed: Sequence[Span] = ()) -> list[Hit]:
        return [(a, b, confidence) for a, b in v.spans(compiled, cell)
                if b > a and (check is None or check(cell[a:b]))]
    return Detector(spec["name"], CUSTOM_FAMILY, spec["pattern"], find, lambda t: v.mask_tail(t, min(4, len(t) // 3)))


def pattern_problem(pattern: str) -> str | None:
    """Why a custom pattern cannot be one (None: it can): what the engine's RE2 (pyarrow's prefilter and
    google-re2's extraction) refuses, or a pattern that matches the empty string."""
    reason = re2_error(pattern)
    if reason is not None:
        return f"not a pattern RE2 runs (no look-arounds or back-references): {reason}"
    try:
        if re2.compile(pattern).fullmatch("") is not None:
            return "it matches the empty string"
    except Exception as exc:  # google-re2 refusing what pyarrow took: its message names why
        return f"not a pattern RE2 runs: {exc}"
    return None


def selected_detectors(names: list[str] | None, custom: list[dict] = ()) -> list[Detector]:
    """The detectors a scan runs: all (None), or those named, by name or family, in the catalog's order,
    with the workspace's own (`custom` specs) among them before the high-entropy tokens."""
    own = [custom_detector(spec) for spec in custom]
    catalog = [d for d in DETECTORS if d.family != "high_entropy"] + own + \
        [d for d in DETECTORS if d.family == "high_entropy"]
    if names is None:
        return catalog
    wanted = set(names)
    return [d for d in catalog if d.name in wanted or d.family in wanted]
