"""meshmart services: one package per service plus the shared runtime in ``services.kit``."""
