"""The shared runtime every meshmart service uses.

Import the modules directly (``from services.kit.server import serve``); this package
re-exports nothing so that importing one piece never drags in the others.
"""
