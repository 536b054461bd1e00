"""What Redis commands leave in a trace: a count and a time on the span they ran under; a
span of their own only for a command that was slow or failed (``flotilla.core._folding``).

Real Redis, redis-py instrumented by ``flotilla.core.instrument_redis``; spans go to memory.
"""

from __future__ import annotations

import pytest
import redis
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from flotilla.core import _statements, instrument_redis, redis_client, redis_namespace

pytestmark = pytest.mark.integration


@pytest.fixture
def client(spans: InMemorySpanExporter, redis_url: str) -> redis.Redis:
    instrument_redis()
    clean, namespace = redis_namespace(redis_url)
    made: redis.Redis = redis_client(clean)
    made.delete(f"{namespace}:n")
    spans.clear()
    return made


def test_quick_commands_count_on_their_span_and_none_gets_a_span_of_its_own(
    spans: InMemorySpanExporter, client: redis.Redis, redis_url: str
) -> None:
    key = f"{redis_namespace(redis_url)[1]}:n"
    with trace.get_tracer("test").start_as_current_span("request"):
        client.incr(key)
        client.incr(key)
        with client.pipeline() as pipe:
            pipe.get(key).expire(key, 60).execute()
    (request,) = spans.get_finished_spans()
    attributes = dict(request.attributes or {})
    assert attributes["redis.client.operations"] == 3  # the pipeline is one round trip
    assert attributes["redis.client.operations.duration_ms"] > 0


def test_a_slow_command_and_a_failed_one_get_spans_of_their_own(
    spans: InMemorySpanExporter,
    client: redis.Redis,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = f"{redis_namespace(redis_url)[1]}:n"
    with trace.get_tracer("test").start_as_current_span("request") as request:
        client.set(key, "not a number")
        with pytest.raises(redis.ResponseError):
            client.incr(key)
        monkeypatch.setenv(_statements.SLOW_STATEMENT_VARIABLE, "0")  # every command is "slow"
        client.get(key)
    by_name = {span.name: span for span in spans.get_finished_spans()}
    assert set(by_name) == {"request", "INCRBY", "GET"}, sorted(by_name)
    failed = by_name["INCRBY"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.parent is not None
    assert failed.parent.span_id == request.get_span_context().span_id
    assert dict(by_name["request"].attributes or {})["redis.client.operations"] == 1  # the SET


def test_a_script_redis_had_not_loaded_is_no_failure(
    spans: InMemorySpanExporter, client: redis.Redis, redis_url: str
) -> None:
    """The first call of a script on a fresh (or restarted) Redis answers NOSCRIPT, and
    redis-py loads the script and calls it again: both calls fold, nothing is red (before, the
    first order of every fresh platform had a red EVALSHA span in its trace)."""
    key = f"{redis_namespace(redis_url)[1]}:n"
    script = client.register_script("return redis.call('INCR', KEYS[1])")
    client.script_flush()
    spans.clear()
    with trace.get_tracer("test").start_as_current_span("request"):
        assert script(keys=[key]) == 1
    (request,) = spans.get_finished_spans()
    assert dict(request.attributes or {})["redis.client.operations"] == 3  # EVALSHA, LOAD, EVALSHA


def test_a_script_redis_had_not_loaded_folds_however_long_it_took(
    spans: InMemorySpanExporter,
    client: redis.Redis,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first call of a process also opens its connection, so its NOSCRIPT answer can be
    slower than the slow-command threshold: it still folds, and nothing is red."""
    key = f"{redis_namespace(redis_url)[1]}:n"
    script = client.register_script("return redis.call('INCR', KEYS[1])")
    client.script_flush()
    spans.clear()
    monkeypatch.setenv(_statements.SLOW_STATEMENT_VARIABLE, "0")  # every command is "slow"
    with trace.get_tracer("test").start_as_current_span("request"):
        assert script(keys=[key]) == 1
    finished = spans.get_finished_spans()
    assert sorted(span.name for span in finished) == ["EVALSHA", "SCRIPT LOAD", "request"]
    assert [span.name for span in finished if span.status.status_code is StatusCode.ERROR] == []


def test_a_command_under_no_span_is_a_span_of_its_own(
    spans: InMemorySpanExporter, client: redis.Redis, redis_url: str
) -> None:
    client.get(f"{redis_namespace(redis_url)[1]}:n")
    (span,) = spans.get_finished_spans()
    assert span.name == "GET"
