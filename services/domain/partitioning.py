"""Which partition a key lands on: Kafka's default partitioner, murmur2 (the Java client's, and
confluent-kafka's with partitioner=murmur2_random, aiokafka's and so Faust's).

Every producer of the ledger uses it, so one scan id names one partition of each topic: the
coordinator's watchdog and the audit tools find a scan's records without reading the others.
"""
from __future__ import annotations

_M, _SEED = 0x5BD1E995, 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as an unsigned 32-bit int."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail, rest = length - length % 4, length % 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_of(key: str, partitions: int) -> int:
    """The partition of `key` in a topic of `partitions` partitions (Java's toPositive(murmur2) % n)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions
