"""A labelled corpus for the detectors, deterministic from a seed.

`generate(seed)` writes csv, json, jsonl, parquet and txt files (some gzipped) in memory, with
planted true positives of every detector family and hard negatives beside them: 16-digit
numbers failing Luhn, SSNs with invalid areas/groups/serials, 4-digit and 10-digit record ids,
dates and times, version strings (`v1.2.3.4`, `version 10.0.0.1`), invalid IPs, IBANs and
national ids with a wrong check, low-entropy and periodic hex, UUIDs, AWS's documentation key,
public key blocks, file names that look like emails. Each cell (or line) holds at most one
planted value, so the ground truth is a set of (file, location, family): location
("cell", row, column) for tabular files, ("line", n) for text, as the engine reports them.

`score(corpus, findings)` gives precision and recall per family.
"""
from __future__ import annotations

import base64
import binascii
import csv
import gzip
import io
import ipaddress
import random
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson
import phonenumbers
import pyarrow as pa
import pyarrow.parquet as pq
from stdnum.it import codicefiscale

FAMILIES = ["cloud_key", "email", "high_entropy", "iban", "ip_address", "national_id", "payment_card", "phone",
            "private_key", "ssn"]
Key = tuple[str, tuple, str]  # file name, location, family


@dataclass
class CorpusFile:
    name: str
    data: bytes


@dataclass
class Corpus:
    files: list[CorpusFile] = field(default_factory=list)
    truth: set[Key] = field(default_factory=set)
    planted_values: list[tuple[str, str]] = field(default_factory=list)  # (family, raw value)

    @property
    def size(self) -> int:
        return sum(len(f.data) for f in self.files)


# -- values --------------------------------------------------------------------------------------------

WORDS = [
    "the", "order", "was", "shipped", "to", "customer", "after", "review", "of", "account", "status",
    "pending", "approved", "invoice", "payment", "record", "updated", "note", "from", "support", "team",
    "regarding", "delivery", "window", "item", "quantity", "price", "total", "region", "north", "south",
    "warehouse", "batch", "ticket", "closed", "open", "escalated",
]
FIRST = ["john", "jane", "maria", "li", "ahmed", "olga", "pierre", "sofia", "kenji", "ana"]
LAST = ["smith", "doe", "garcia", "wang", "khan", "petrova", "martin", "rossi", "tanaka", "silva"]
DOMAINS = ["example.com", "mail.example.org", "corp.example.net", "example.co.uk"]
_ALNUM = string.ascii_letters + string.digits
_B64 = _ALNUM + "+/"
_B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


class Values:
    def __init__(self, rng: random.Random):
        self.r = rng

    def digits(self, n: int) -> str:
        return "".join(self.r.choice(string.digits) for _ in range(n))

    def text(self, lo: int = 2, hi: int = 8) -> str:
        return " ".join(self.r.choice(WORDS) for _ in range(self.r.randint(lo, hi)))

    # positives
    def email(self) -> str:
        sep = self.r.choice([".", "_", ""])
        return f"{self.r.choice(FIRST)}{sep}{self.r.choice(LAST)}{self.r.randint(1, 999)}@{self.r.choice(DOMAINS)}"

    def phone(self) -> str:
        while True:
            if self.r.random() < 0.5:
                area = self.r.choice(["212", "415", "646", "312", "617", "206", "303", "512", "718", "404"])
                local = str(self.r.randint(2, 9)) + self.digits(2) + self.digits(4)
                number = phonenumbers.parse("+1" + area + local)
                fmt = self.r.choice(["({a}) {b}-{c}", "{a}-{b}-{c}", "{a}.{b}.{c}", "+1 {a}-{b}-{c}", "+1{a}{b}{c}"])
                text = fmt.format(a=area, b=local[:3], c=local[3:])
            else:
                region = self.r.choice(["GB", "DE", "FR", "IN", "BR", "AU", "JP", "ES"])
                example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
                national = str(example.national_number)
                national = national[:-4] + self.digits(4)
                number = phonenumbers.parse(f"+{example.country_code}{national}")
                text = phonenumbers.format_number(number, self.r.choice(
                    [phonenumbers.PhoneNumberFormat.INTERNATIONAL, phonenumbers.PhoneNumberFormat.E164]))
            if phonenumbers.is_valid_number(number):
                return text

    def payment_card(self) -> str:
        prefix, length = self.r.choice([("4", 16), ("51", 16), ("55", 16), ("37", 15), ("34", 15), ("6011", 16),
                                        ("2221", 16), ("4", 13)])
        body = prefix + self.digits(length - len(prefix) - 1)
        number = body + _luhn_digit(body)
        style = self.r.choice(["plain", "space", "dash"]) if length == 16 else "plain"
        if style == "plain":
            return number
        sep = " " if style == "space" else "-"
        return sep.join(number[i:i + 4] for i in range(0, 16, 4))

    def iban(self) -> str:
        country, bban = self.r.choice([
            ("DE", lambda: self.digits(18)),
            ("GB", lambda: self.r.choice(["WEST", "NWBK", "BARC", "MIDL"]) + self.digits(14)),
            ("NL", lambda: self.r.choice(["ABNA", "INGB", "RABO"]) + self.digits(10)),
            ("FR", lambda: self.digits(10) + "".join(self.r.choice(string.ascii_uppercase + string.digits)
                                                     for _ in range(11)) + self.digits(2)),
        ])
        bban = bban()
        if country == "FR":
            bban = bban[:-2] + _fr_rib_key(bban[:-2])
        iban = country + _iban_check(country, bban) + bban
        return " ".join(iban[i:i + 4] for i in range(0, len(iban), 4)) if self.r.random() < 0.4 else iban

    def ssn(self) -> str:
        area = self.r.choice([a for a in range(1, 900) if a != 666])
        return f"{area:03d}-{self.r.randint(1, 99):02d}-{self.r.randint(1, 9999):04d}"

    def national_id(self) -> str:
        kind = self.r.random()
        if kind < 0.34:
            number = self.r.randint(10_000_000, 99_999_999)
            return f"{number}{'TRWAGMYFPDXBNJZSQVHLCKE'[number % 23]}"
        if kind < 0.67:
            digits = [int(d) for d in self.digits(9)]
            while len(set(digits)) == 1:
                digits = [int(d) for d in self.digits(9)]
            for n in (10, 11):
                check = sum(d * w for d, w in zip(digits, range(n, 1, -1), strict=False)) * 10 % 11 % 10
                digits.append(check)
            s = "".join(map(str, digits))
            return f"{s[:3]}.{s[3:6]}.{s[6:9]}-{s[9:]}"
        letters = "".join(self.r.choice(string.ascii_uppercase) for _ in range(6))
        body = (letters + self.digits(2) + self.r.choice("ABCDEHLMPRST") + f"{self.r.randint(1, 28):02d}"
                + self.r.choice("ABCDEFGHILMZ") + self.digits(3))
        return body + codicefiscale.calc_check_digit(body)

    def ip_address(self) -> str:
        r = self.r
        if r.random() < 0.7:
            return f"{r.randint(1, 223)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"
        groups = [self.r.randint(0, 0xFFFF) for _ in range(8)]
        groups[0] = self.r.choice([0x2001, 0x2a02, 0xfe80, 0x2600])
        if self.r.random() < 0.5:
            groups[3:6] = [0, 0, 0]
        return str(ipaddress.IPv6Address(":".join(f"{g:x}" for g in groups)))

    def cloud_key(self) -> str:
        kind = self.r.randrange(6)
        if kind == 0:
            return "AKIA" + "".join(self.r.choice(string.ascii_uppercase + "234567") for _ in range(16))
        if kind == 1:
            return "AIza" + "".join(self.r.choice(_ALNUM + "_-") for _ in range(35))
        if kind == 2:
            body = "".join(self.r.choice(_ALNUM) for _ in range(30))
            return "ghp_" + body + _base62(binascii.crc32(body.encode()), 6)
        if kind == 3:
            return f"xoxb-{self.digits(11)}-{self.digits(12)}-" + "".join(self.r.choice(_ALNUM) for _ in range(24))
        if kind == 4:
            key = base64.b64encode(self.r.randbytes(64)).decode()
            return f"DefaultEndpointsProtocol=https;AccountName=acct{self.digits(3)};AccountKey={key}"
        return "sk_live_" + "".join(self.r.choice(_ALNUM) for _ in range(24))

    def private_key(self) -> str:
        kind = self.r.choice(["RSA ", "EC ", "", "OPENSSH "])
        body = base64.b64encode(self.r.randbytes(self.r.randint(90, 200))).decode()
        lines = [body[i:i + 64] for i in range(0, len(body), 64)]
        return "\n".join([f"-----BEGIN {kind}PRIVATE KEY-----", *lines, f"-----END {kind}PRIVATE KEY-----"])

    def high_entropy(self) -> str:
        if self.r.random() < 0.5:
            while True:
                token = "".join(self.r.choice(_B64) for _ in range(self.r.randint(32, 48)))
                if any(c.isdigit() for c in token) and any(c.isupper() for c in token) \
                        and any(c.islower() for c in token):
                    return token
        while True:
            token = self.r.randbytes(self.r.choice([20, 32])).hex()
            if any(c.isdigit() for c in token) and any(c.isalpha() for c in token):
                return token

    # hard negatives: each looks like some family and is none
    def negative(self) -> str:
        r = self.r
        choices: list[Callable[[], str]] = [
            lambda: _bad_luhn(r.choice("45") + self.digits(14)),  # 16 digits failing Luhn
            lambda: f"{r.choice(['000', '666', str(r.randint(900, 999))])}-{r.randint(1, 99):02d}-{self.digits(4)}",
            lambda: f"{r.randint(100, 899)}-00-{self.digits(4)}",
            lambda: f"{r.randint(100, 899)}-{r.randint(10, 99)}-0000",
            lambda: str(r.randint(1000, 9999)),  # 4-digit record id
            lambda: str(r.randint(1_000_000_000, 9_999_999_999)),  # 10-digit id, no separators
            lambda: f"2024-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
            lambda: f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}",
            lambda: f"v{r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 9)}.{r.randint(0, 99)}",
            lambda: f"version {r.randint(1, 20)}.{r.randint(0, 9)}.{r.randint(0, 9)}.{r.randint(0, 9)}",
            lambda: f"{r.randint(256, 999)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(0, 255)}",
            lambda: f"{r.randint(1, 9)}.{r.randint(0, 9)}.{r.randint(0, 9)}",
            lambda: "deadbeef" * 5,
            lambda: "0123456789abcdef" * 2,
            lambda: "".join(r.choice("ab01") for _ in range(40)),  # hex with 2 bits of entropy per char
            lambda: str(_uuid(r)),
            lambda: "AKIAIOSFODNN7EXAMPLE",
            lambda: "-----BEGIN PUBLIC KEY-----",
            lambda: f"icon@{r.randint(2, 3)}x.png",
            lambda: _bad_iban(self.iban()),
            lambda: f"{r.randint(10_000_000, 99_999_999)}" + "TRWAGMYFPDXBNJZSQVHLCKE"[r.randrange(23)],
            lambda: "getUserAccountSettingsByIdentifierForRegion",
            lambda: f"{r.randint(1, 9)},{self.digits(3)}.{self.digits(2)}",
            lambda: f"ORD-{self.digits(8)}",
        ]
        while True:
            value = r.choice(choices)()
            if _is_negative(value):
                return value


def _is_negative(value: str) -> bool:
    """A hard negative drawn at random can be valid by chance (a random DNI letter that is
    right one time in 23, an IBAN whose changed digit still checks): those are redrawn."""
    from stdnum import iban
    from stdnum.es import dni
    compact = value.replace(" ", "")
    if compact[:2].isalpha() and compact[2:4].isdigit() and iban.is_valid(compact):
        return False
    return not (len(value) == 9 and value[:8].isdigit() and dni.is_valid(value))


def _luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return str(-total % 10)


def _bad_luhn(body: str) -> str:
    good = _luhn_digit(body)
    return body + str((int(good) + 1 + int(body[-1]) % 9) % 10)


def _iban_check(country: str, bban: str) -> str:
    number = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{98 - number % 97:02d}"


def _fr_rib_key(rib: str) -> str:
    numeric = "".join(str(int(c, 36)) if c.isdigit() else "12345678912345678923456789"[ord(c) - 65] for c in rib)
    return f"{97 - int(numeric + '00') % 97:02d}"


def _bad_iban(iban: str) -> str:
    compact = iban.replace(" ", "")
    last = compact[-1]
    return compact[:-1] + str((int(last, 36) + 1) % 10)


def _base62(number: int, width: int) -> str:
    out = ""
    while number:
        number, d = divmod(number, 62)
        out = _B62[d] + out
    return out.rjust(width, "0")


def _uuid(r: random.Random) -> str:
    h = r.randbytes(16).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# -- files -----------------------------------------------------------------------------------------------

COLUMNS = ["id", "name", "contact", "notes", "reference", "updated"]
_TEMPLATES = ["{}", "{}", "contact: {}", "see {} for details", "{} (verified)", "value={}"]


class _Planter:
    def __init__(self, rng: random.Random, corpus: Corpus, positive_rate: float, negative_rate: float):
        self.r, self.corpus, self.v = rng, corpus, Values(rng)
        self.positive_rate, self.negative_rate = positive_rate, negative_rate

    def cell(self, name: str, location: tuple, one_line: bool = False) -> str:
        roll = self.r.random()
        if roll < self.positive_rate:
            family = self.r.choice(FAMILIES)
            value = getattr(self.v, family)()
            if family == "private_key" and one_line:
                family, value = "high_entropy", self.v.high_entropy()
            self.corpus.truth.add((name, location, family))
            self.corpus.planted_values.append((family, value))
            return value if family == "private_key" else self.r.choice(_TEMPLATES).format(value)
        if roll < self.positive_rate + self.negative_rate:
            return self.r.choice(_TEMPLATES).format(self.v.negative())
        return self.v.text(1, 6)

    def records(self, name: str, rows: int) -> list[dict]:
        out = []
        for row in range(1, rows + 1):
            record = {"id": str(self.r.randint(1000, 99999)), "name": f"{self.r.choice(FIRST)} {self.r.choice(LAST)}"}
            for column in COLUMNS[2:]:
                record[column] = self.cell(name, ("cell", row, column))
            out.append(record)
        return out


def generate(seed: int = 0, files: int = 60, rows: int = 300, positive_rate: float = 0.1,
             negative_rate: float = 0.15, gzip_rate: float = 0.2) -> Corpus:
    rng = random.Random(seed)
    corpus = Corpus()
    planter = _Planter(rng, corpus, positive_rate, negative_rate)
    formats = ["csv", "json", "jsonl", "parquet", "txt"]
    for i in range(files):
        fmt = formats[i % len(formats)]
        gz = rng.random() < gzip_rate
        name = f"data/file_{i:04d}.{fmt}" + (".gz" if gz else "")
        data = _write(fmt, name, rows, planter)
        corpus.files.append(CorpusFile(name, gzip.compress(data, mtime=0) if gz else data))
    return corpus


def _write(fmt: str, name: str, rows: int, planter: _Planter) -> bytes:
    if fmt == "txt":
        return _text(name, rows * 3, planter)
    records = planter.records(name, rows)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return out.getvalue().encode()
    if fmt == "json":
        # nested: the contact sits inside a profile object (reported as profile.contact)
        for record in records:
            record["profile"] = {"contact": record.pop("contact")}
        _rename(planter.corpus, name, "contact", "profile.contact")
        return orjson.dumps(records, option=orjson.OPT_INDENT_2)
    if fmt == "jsonl":
        return b"\n".join(orjson.dumps(r) for r in records) + b"\n"
    table = pa.Table.from_pylist(records)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue().to_pybytes()


def _rename(corpus: Corpus, name: str, old: str, new: str) -> None:
    moved = {k for k in corpus.truth if k[0] == name and k[1][0] == "cell" and k[1][2] == old}
    corpus.truth -= moved
    corpus.truth |= {(k[0], ("cell", k[1][1], new), k[2]) for k in moved}


def _text(name: str, lines: int, planter: _Planter) -> bytes:
    out: list[str] = []
    while len(out) < lines:
        number = len(out) + 1
        value = planter.cell(name, ("line", number))
        prose = planter.v.text(3, 10)
        if value.startswith("-----BEGIN"):
            out += value.split("\n")  # a key block: the finding is on its first line
        else:
            out.append(f"{prose} {value}" if planter.r.random() < 0.5 else f"{value} {prose}")
    return ("\n".join(out) + "\n").encode()


# -- scoring -----------------------------------------------------------------------------------------------

def finding_key(name: str, finding) -> Key:
    location = ("line", finding.line) if finding.line is not None else ("cell", finding.row, finding.column)
    return name, location, finding.family


def score(corpus: Corpus, found: Iterable[Key]) -> dict[str, dict]:
    """Per family: precision, recall, tp, fp, fn over (file, location, family) keys."""
    found = set(found)
    out = {}
    for family in FAMILIES:
        truth = {k for k in corpus.truth if k[2] == family}
        got = {k for k in found if k[2] == family}
        tp = len(truth & got)
        out[family] = {"precision": tp / len(got) if got else 1.0, "recall": tp / len(truth) if truth else 1.0,
                       "tp": tp, "fp": len(got - truth), "fn": len(truth - got)}
    return out
