"""Logs are one JSON object per line with service, instance and the request id."""

from __future__ import annotations

import json
import logging

import grpc
import pytest

from services.kit.context import request_scope
from services.kit.logging import AccessLog, configure_logging, get_logger
from services.kit.testing import running_server
from tests.unit.kit.echo_service import SPEC, EchoClient, StringValue


def _records(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_structlog_and_stdlib_lines_are_json_with_identity(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("catalog", "catalog-7111", "INFO")
    with request_scope(request_id="req-1"):
        get_logger("test").info("thing.happened", count=2)
    logging.getLogger("grpc").warning("from the standard library")
    first, second = _records(capsys.readouterr().err)
    assert first["event"] == "thing.happened"
    assert (first["service"], first["instance"], first["request_id"]) == (
        "catalog",
        "catalog-7111",
        "req-1",
    )
    assert first["level"] == "info" and "timestamp" in first
    assert second["event"] == "from the standard library"
    assert second["service"] == "catalog"


async def test_each_rpc_is_logged_with_method_code_duration_and_request_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("kittest", "kittest-1", "INFO")
    async with running_server([SPEC]) as target, grpc.aio.insecure_channel(target) as channel:
        await (
            EchoClient(channel)
            .echo(StringValue(value="not-found"), metadata=(("x-request-id", "req-9"),), timeout=5)
            .code()
        )
    [record] = [r for r in _records(capsys.readouterr().err) if r["event"] == "rpc"]
    assert record["method"] == "/meshmart.kittest.v1.EchoService/Echo"
    assert record["code"] == "NOT_FOUND"
    assert record["request_id"] == "req-9"
    assert isinstance(record["duration_ms"], float)


def test_level_follows_reconfiguration_for_existing_loggers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logger = get_logger("early")  # created before the service configures its level
    configure_logging("svc", "svc-1", "WARNING")
    logger.info("hidden")
    configure_logging("svc", "svc-1", "DEBUG")
    logger.debug("shown")
    configure_logging("svc", "svc-1", "INFO")
    assert [r["event"] for r in _records(capsys.readouterr().err)] == ["shown"]


def test_the_access_line_has_the_fields_of_a_structlog_line_in_the_same_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The access log is written without structlog's logger (services/kit/logging.py
    # AccessLog): operators' queries must find every field a structlog line has.
    configure_logging("catalog", "catalog-7111", "INFO")
    fields = {"method": "/meshmart.catalog.v1.CatalogService/GetProduct", "code": "NOT_FOUND",
              "duration_ms": 0.412, "error": "product 'sku-0' not found"}
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with request_scope(request_id="req-3", traceparent=traceparent):
        get_logger("meshmart.rpc").info("rpc", **fields)
        AccessLog("meshmart.rpc").line(fields)
    structlog_line, access_line = _records(capsys.readouterr().err)
    assert list(access_line) == list(structlog_line)
    assert list(access_line) == ["logger_name", "method", "code", "duration_ms", "error",
                                 "event", "level", "timestamp", "service", "instance",
                                 "request_id", "trace_id"]
    assert {k: v for k, v in access_line.items() if k != "timestamp"} == {
        k: v for k, v in structlog_line.items() if k != "timestamp"}
    assert access_line["trace_id"] == "0af7651916cd43dd8448eb211c80319c"


def test_the_access_line_follows_the_level(capsys: pytest.CaptureFixture[str]) -> None:
    access = AccessLog("meshmart.rpc")
    configure_logging("svc", "svc-1", "INFO")
    access.line({"method": "/grpc.health.v1.Health/Check", "code": "OK"}, level="debug")
    configure_logging("svc", "svc-1", "DEBUG")
    access.line({"method": "/grpc.health.v1.Health/Watch", "code": "OK"}, level="debug")
    configure_logging("svc", "svc-1", "INFO")
    [record] = _records(capsys.readouterr().err)
    assert (record["method"], record["level"]) == ("/grpc.health.v1.Health/Watch", "debug")
