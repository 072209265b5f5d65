"""The mesh tests' fixture, ``mesh``, lives in tests/conftest.py: it is shared with
tests/edge, so a session that runs both starts one mesh, not two."""
