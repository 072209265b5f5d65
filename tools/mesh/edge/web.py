"""The storefront (web/, built by `make setup` into web/dist) as the edge serves it: at
``/`` on the same origin as ``/api/v1``, by Envoy direct responses read from files.

Why the edge itself and not a static web service of its own: the assets are a handful of
immutable files (one HTML page, one JS and one CSS bundle, a picture per category) that
change only with a build; Envoy reads each once at start and answers from memory, which
is the same mechanism as /api/openapi.json. A mesh service for them would be a process,
a sidecar, a second kind of health check and an HTTP protocol in a mesh of gRPC
services, to serve files that never change while it runs. (docs/design.md: the web.)

Vite names the bundles ``assets/app-<content hash>.js|css`` (web/vite.config.ts). The
routes match any hash, and the edge copies (``files``) the current build's bundles to fixed
names under ``<run>/edge/web``: so envoy/edge.yaml does not change with every build, and
the hash in the URL still makes browsers fetch a new build (index.html, which names it,
is never cached). A rebuild is served after the edge restarts (``run`` renders again).
Without a build, index.html says how to make one.
"""

from __future__ import annotations

from typing import Any

from tools.mesh.topology import ROOT

WEB = ROOT / "web"
DIST = WEB / "dist"
IMAGES = WEB / "public" / "images"  # committed sources: one SVG per catalog category

LONG_CACHE = "public, max-age=31536000, immutable"  # content-hashed names
IMAGE_CACHE = "public, max-age=86400"  # fixed names: a day
NO_CACHE = "no-cache"  # index.html names the current bundles: revalidate every time

# What the browser gets gzipped (the edge's compressor; API JSON is left as it is).
COMPRESSED_TYPES = ("text/html", "application/javascript", "text/css", "image/svg+xml")

NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>meshmart</title></head>
<body><h1>The storefront is not built</h1>
<p>Run <code>make setup</code> (it builds web/ with npm), then restart the edge.</p>
</body></html>
"""


def images() -> list[str]:
    return sorted(p.name for p in IMAGES.glob("*.svg"))


def _route(name: str, match: dict[str, Any], filename: str, content_type: str,
           cache: str) -> dict[str, Any]:
    return {
        "name": f"web-{name}",
        "match": {**match, "headers": [{"name": ":method", "string_match": {"exact": "GET"}}]},
        "direct_response": {"status": 200, "body": {"filename": filename}},
        "response_headers_to_add": [
            {"header": {"key": "content-type", "value": content_type},
             "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
            {"header": {"key": "cache-control", "value": cache},
             "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
            {"header": {"key": "x-content-type-options", "value": "nosniff"},
             "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
        ],
    }


def routes(files_dir: str) -> list[dict[str, Any]]:
    """The edge's routes for the storefront; ``files_dir`` is where the edge copied ``files()``."""
    html = "text/html; charset=utf-8"
    out = [
        _route("index", {"path": "/"}, f"{files_dir}/index.html", html, NO_CACHE),
        _route("index-html", {"path": "/index.html"}, f"{files_dir}/index.html", html, NO_CACHE),
        _route("js", {"safe_regex": {"regex": r"^/assets/app-[A-Za-z0-9_-]+\.js$"}},
               f"{files_dir}/app.js", "application/javascript; charset=utf-8", LONG_CACHE),
        _route("css", {"safe_regex": {"regex": r"^/assets/app-[A-Za-z0-9_-]+\.css$"}},
               f"{files_dir}/app.css", "text/css; charset=utf-8", LONG_CACHE),
    ]
    out += [
        _route(f"image-{name.removesuffix('.svg')}", {"path": f"/images/{name}"},
               f"{files_dir}/images/{name}", "image/svg+xml", IMAGE_CACHE)
        for name in images()
    ]
    return out


def _bundle(kind: str) -> bytes:
    found = sorted((DIST / "assets").glob(f"app-*.{kind}"))
    if len(found) > 1:
        raise ValueError(f"{DIST}/assets has {len(found)} app-*.{kind} files: rebuild web/")
    return found[0].read_bytes() if found else b""


def files() -> dict[str, bytes]:
    """What to put under <run>/edge/web: the current build under fixed names (empty
    bundles and a notice when web/ is not built)."""
    index = DIST / "index.html"
    out = {
        "index.html": index.read_bytes() if index.exists() else NOT_BUILT.encode(),
        "app.js": _bundle("js"),
        "app.css": _bundle("css"),
    }
    out.update({f"images/{name}": (IMAGES / name).read_bytes() for name in images()})
    return out
