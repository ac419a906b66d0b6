"""The partitioner the audit tools use to find a scan's records is the one every producer uses."""
from __future__ import annotations

from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from services.domain.partitioning import murmur2, partition_of


@given(st.binary(max_size=64))
def test_murmur2_is_kafkas(data):
    assert murmur2(data) & 0x7FFFFFFF == aiokafka_murmur2(data) & 0x7FFFFFFF


def test_known_keys_land_where_the_java_client_puts_them():
    # Kafka's own test vectors (org.apache.kafka.common.utils.UtilsTest#testMurmur2)
    assert murmur2(b"21") & 0xFFFFFFFF == (-973932308) & 0xFFFFFFFF
    assert murmur2(b"foobar") & 0xFFFFFFFF == (-790332482) & 0xFFFFFFFF
    assert murmur2(b"a-little-bit-long-string") & 0xFFFFFFFF == (-985981536) & 0xFFFFFFFF
    assert all(0 <= partition_of(f"scan-{i}", 6) < 6 for i in range(100))
