"""The sink's Kafka clients as configured (debug_sink.sink.kafka); their behaviour against a
broker is tested in tests/integration."""

from __future__ import annotations

from debug_sink.settings import Settings
from debug_sink.sink import kafka


async def test_the_group_consumer_reads_committed_records_only() -> None:
    """Records of aborted transactions are skipped (Tansu, the test broker, has no
    transactions, so this cannot be shown end to end here)."""
    settings = Settings(postgres_dsn="postgresql://x/y", kafka_bootstrap_servers="127.0.0.1:1")
    consumer = kafka.group_consumer(settings)
    try:
        assert consumer._isolation_level == "read_committed"
        assert consumer._enable_auto_commit is False
    finally:
        await consumer.stop()  # never started: closes what the constructor opened
