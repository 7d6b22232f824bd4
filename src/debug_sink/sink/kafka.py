"""The sink's Kafka clients: how they are configured and started.

Owns the options of the consumer (the group member that reads ``debug.*``), of the producer
(dead letters) and of plain read-only consumers (replay, status), and :func:`start_client`,
which turns an unreachable broker into :class:`~debug_sink.errors.BrokerUnavailable`.

Guarantees: no client auto-commits offsets (PostgreSQL holds them) and none relies on the
idempotent producer or transactions (not every Kafka-protocol broker has them).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    ClusterAuthorizationFailedError,
    IllegalSaslStateError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from debug_sink.errors import BrokerUnavailable, ConfigurationError
from debug_sink.settings import Settings

KafkaClient = TypeVar("KafkaClient", AIOKafkaConsumer, AIOKafkaProducer)

#: Refusals that waiting cannot cure: wrong credentials or mechanism, no permission.
_NEVER_WORKS = (
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    ClusterAuthorizationFailedError,
    IllegalSaslStateError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)


async def start_client(client: KafkaClient, settings: Settings) -> KafkaClient:
    """Start an aiokafka client; an unreachable broker becomes :class:`BrokerUnavailable`
    (transient: the caller may wait it out), and the half-started client is stopped."""
    try:
        await client.start()
    except asyncio.CancelledError:
        # A stop while connecting (a broker that never answers): close the half-started
        # client rather than leave it to the garbage collector's "Unclosed" error.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.stop(), 5)
        raise
    except KafkaError as exc:
        with contextlib.suppress(Exception):
            await client.stop()
        where = settings.kafka_bootstrap_servers
        if isinstance(exc, _NEVER_WORKS):
            raise ConfigurationError(
                f"Kafka at {where} refused the client ({type(exc).__name__}): check the "
                "DEBUG_SINK_KAFKA_SASL_* and _SSL_* settings"
            ) from exc
        raise BrokerUnavailable(f"cannot reach Kafka at {where}: {exc}") from exc
    return client


def partition_buffer_bytes(settings: Settings) -> int:
    """Bytes fetched and buffered per partition before that partition is paused: small, so
    that one fetch brings a slice of every partition (the time-ordered interleave needs it)."""
    return max(64 << 10, min(settings.max_inflight_bytes // 64, 1 << 20))


def group_consumer(settings: Settings) -> AIOKafkaConsumer:
    """The sink's consumer-group member (not started, not subscribed)."""
    budget = partition_buffer_bytes(settings)
    return AIOKafkaConsumer(
        **settings.kafka_client_options(),
        group_id=settings.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # Only what producers committed: an event of an aborted Kafka transaction was never
        # sent, as far as its producer knows (a broker without transactions answers alike).
        isolation_level="read_committed",
        metadata_max_age_ms=5000,
        max_poll_interval_ms=300_000,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=max(100, settings.kafka_session_timeout_ms // 10),
        # A whole fetch response, not only each partition of it, within one partition's
        # budget: a broker may answer with much more of one partition than
        # max_partition_fetch_bytes (Tansu gives one partition of a response up to
        # fetch_max_bytes), and the backpressure can pause a partition only after its records
        # have arrived. With half of max_inflight_bytes here, the sink held twice its
        # in-flight budget, and a 1M-event drain peaked at 292 MB of RSS instead of 175.
        # Progress is safe: a batch larger than the limit is still returned (KIP-74).
        fetch_max_bytes=budget,
        max_partition_fetch_bytes=budget,
        # aiokafka's default 500 ms fetch wait would add up to half a second to every
        # event's latency under light traffic; never wait longer than a batch may age.
        fetch_max_wait_ms=max(10, min(settings.batch_max_age_ms, 100)),
    )


def dead_letter_producer(settings: Settings) -> AIOKafkaProducer:
    """The producer of the dead-letter topic (not started)."""
    return AIOKafkaProducer(
        **settings.kafka_client_options(),
        acks="all",
        linger_ms=5,
        enable_idempotence=False,
        request_timeout_ms=30000,
    )


def reader(settings: Settings, **options: Any) -> AIOKafkaConsumer:
    """A consumer outside any group, for metadata and log ends (not started)."""
    return AIOKafkaConsumer(**settings.kafka_client_options(), enable_auto_commit=False, **options)
