"""Tamper evidence: hash chains over the records of each writer of a scan.

Every writer of a scan's records keeps a chain: an evaluator for each unit attempt it runs (its
violations, findings, file outcomes, progress and result), the API for a BYOC chunk's reports,
the coordinator for the scan itself (its lifecycle events). Each record carries, as CloudEvents
extension attributes, its stream, its place in it and the digest of the record before it
(`chainstream`, `chainseq`, `chainprev`); the digest is SHA-256 over the record's bytes as
written, so a byte changed anywhere in a record breaks the link its successor holds. The
coordinator's events also name the inputs it acted on since its previous event, each by id and
digest (`chaincovers`: commands, and every unit's result, whose chain vouches for the records
before it), so one chain per scan reaches every record of it.

`scanledger verify` (services.audit.verify) walks them from the log. What this does not stop: a
writer's last record has no successor (the coordinator's last one is the scan's head digest,
which verify prints to be kept elsewhere), and someone who can rewrite the log may rewrite a
whole chain consistently; an anchor kept outside the log (the head digest, printed or signed)
is what shows that.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from services.domain.envelope import encode

STREAM, SEQ, PREV, COVERS = "chainstream", "chainseq", "chainprev", "chaincovers"


def digest(raw: bytes) -> str:
    """A record's digest: SHA-256 of its bytes, 128 bits in hex."""
    return hashlib.sha256(raw).hexdigest()[:32]


def unit_stream(unit_id: str, attempt: int) -> str:
    """The stream of one attempt at a unit (an evaluator's, or a BYOC chunk's reports)."""
    return f"{unit_id}#{attempt}"


@dataclass
class Chain:
    """One writer's chain: `seal` stamps an event with its place and returns the bytes to write."""
    stream: str
    seq: int = 0
    prev: str = ""
    covers: list[str] = field(default_factory=list)  # "id=digest" of inputs not yet named by an event

    def seal(self, event: dict) -> bytes:
        event[STREAM], event[SEQ], event[PREV] = self.stream, self.seq, self.prev
        if self.covers:
            event[COVERS] = ",".join(self.covers)
            self.covers = []
        raw = encode(event)
        self.seq, self.prev = self.seq + 1, digest(raw)
        return raw

    def seal_encoded(self, raw: bytes) -> bytes:
        """seal() of an event already encoded by orjson without its chain fields: the same bytes."""
        fields: dict = {STREAM: self.stream, SEQ: self.seq, PREV: self.prev}
        if self.covers:
            fields[COVERS] = ",".join(self.covers)
            self.covers = []
        sealed = b"".join((raw[:-1], b",", encode(fields)[1:]))
        self.seq, self.prev = self.seq + 1, digest(sealed)
        return sealed

    def seal_all(self, raws: list[bytes]) -> list[bytes]:
        """[seal_encoded(raw) for raw in raws], the same bytes and the same chain after: the chain fields
        written without a dict or an encoder per record (a unit seals a hundred thousand violations).
        The stream is encoded once, by orjson; a place is an int and a digest is hex, so neither is
        escaped."""
        out: list[bytes] = []
        if raws and self.covers:
            out.append(self.seal_encoded(raws[0]))
            raws = raws[1:]
        if not raws:
            return out
        head = b"," + encode({STREAM: self.stream})[1:-1] + b',"' + SEQ.encode() + b'":'
        middle = b',"' + PREV.encode() + b'":"'
        seq, prev, sha256, append = self.seq, self.prev, hashlib.sha256, out.append
        for raw in raws:
            sealed = b"".join((raw[:-1], head, str(seq).encode(), middle, prev.encode(), b'"}'))
            append(sealed)
            seq, prev = seq + 1, sha256(sealed).hexdigest()[:32]
        self.seq, self.prev = seq, prev
        return out

    def cover(self, event_id: str, raw_digest: str) -> None:
        self.covers.append(f"{event_id}={raw_digest}")

    def as_dict(self) -> dict:
        return {"stream": self.stream, "seq": self.seq, "prev": self.prev, "covers": list(self.covers)}

    @classmethod
    def from_dict(cls, d: dict) -> Chain:
        return cls(d["stream"], d["seq"], d["prev"], list(d.get("covers") or ()))
