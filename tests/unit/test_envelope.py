import hashlib
import uuid

from services.domain.envelope import ID_NAMESPACE, _uuid5_text, deterministic_id


def test_deterministic_ids_are_uuid5_of_the_joined_parts():
    for parts in [("a",), ("violation", "s1", "s1.u0", "r1", 42), ("é" * 300, None)]:
        assert deterministic_id(*parts) == str(uuid.uuid5(ID_NAMESPACE, "|".join(map(str, parts))))


def test_the_uuid5_text_of_any_digest_is_the_uuid_modules():
    """Every digest shape (every variant nibble, every version nibble overwritten) as uuid.UUID writes it."""
    for i in range(5000):
        sha1 = hashlib.sha1(str(i).encode()).digest()
        assert _uuid5_text(sha1) == str(uuid.UUID(bytes=sha1[:16], version=5))
    for nibble in range(256):
        sha1 = bytes([nibble]) * 20
        assert _uuid5_text(sha1) == str(uuid.UUID(bytes=sha1[:16], version=5))
