"""harness/ghz.py: the calls ghz cuts off itself at the end of a duration are not failures.

The reports are shaped as ghz writes them (-O json); the messages are what it
printed for a 2 s run of 32 calls at a time against a bare grpc.aio server.
"""

from __future__ import annotations

from harness.ghz import failed_calls

CLOSED = ("rpc error: code = Unavailable desc = error reading from server: read tcp "
          "127.0.0.1:55972->127.0.0.1:7991: use of closed network connection")


def test_calls_cut_off_when_ghz_closes_its_connection_are_not_failures() -> None:
    report = {"statusCodeDistribution": {"OK": 13092, "Unavailable": 29, "Canceled": 3},
              "errorDistribution": {CLOSED: 29, "rpc error: code = Canceled desc = ...": 3}}
    assert failed_calls(report) == {}


def test_a_server_side_unavailable_still_counts() -> None:
    refused = ("rpc error: code = Unavailable desc = upstream connect error or disconnect/"
               "reset before headers. reset reason: connection failure")
    report = {"statusCodeDistribution": {"OK": 100, "Unavailable": 12, "Internal": 1},
              "errorDistribution": {CLOSED: 4, refused: 8, "rpc error: code = Internal": 1}}
    assert failed_calls(report) == {"Unavailable": 8, "Internal": 1}


def test_a_run_without_errors_has_no_error_distribution() -> None:
    assert failed_calls({"statusCodeDistribution": {"OK": 10}}) == {}
