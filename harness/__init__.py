"""Test and benchmark harness: what tests, bench and tools/chaos share (the in-process
shop, ...). No production code imports it."""
