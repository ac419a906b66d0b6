import uuid

from services.domain.envelope import ID_NAMESPACE, deterministic_id


def test_deterministic_ids_are_uuid5_of_the_joined_parts():
    for parts in [("a",), ("violation", "s1", "s1.u0", "r1", 42), ("é" * 300, None)]:
        assert deterministic_id(*parts) == str(uuid.uuid5(ID_NAMESPACE, "|".join(map(str, parts))))
