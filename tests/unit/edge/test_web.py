"""The storefront as the edge serves it (tools/mesh/edge/web.py): a route per file with
the right type and cache policy, every catalog category's picture, and the build copied
under the fixed names the routes read."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from services.catalog.seed import SEED_PRODUCTS
from tools.mesh.edge import config, web
from tools.mesh.edge.mesh import Edge
from tools.mesh.plan import MeshPlan
from tools.mesh.topology import load_topology


def _by_name(files_dir: str = "/run/edge/web") -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in web.routes(files_dir)}


def _headers(route: dict[str, Any]) -> dict[str, str]:
    return {h["header"]["key"]: h["header"]["value"] for h in route["response_headers_to_add"]}


def test_index_is_never_cached_and_the_hashed_bundles_are_cached_for_a_year() -> None:
    routes = _by_name()
    assert _headers(routes["web-index"])["cache-control"] == "no-cache"
    assert routes["web-index"]["match"]["path"] == "/"
    for kind in ("js", "css"):
        assert "immutable" in _headers(routes[f"web-{kind}"])["cache-control"]
        assert routes[f"web-{kind}"]["direct_response"]["body"]["filename"] == (
            f"/run/edge/web/app.{kind}")


@pytest.mark.parametrize("category", sorted({p.category for p in SEED_PRODUCTS}))
def test_every_category_of_the_catalog_has_its_picture_served(category: str) -> None:
    seeded = next(p for p in SEED_PRODUCTS if p.category == category)
    route = _by_name()[f"web-image-{category}"]
    assert route["match"]["path"] == seeded.image_url
    assert _headers(route)["content-type"] == "image/svg+xml"
    assert (web.IMAGES / f"{category}.svg").read_text().startswith("<svg")


def test_the_files_are_the_current_build_under_fixed_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text('<script src="/assets/app-AbC1.js"></script>')
    (tmp_path / "assets" / "app-AbC1.js").write_text("console.log(1)")
    (tmp_path / "assets" / "app-dEf2.css").write_text("body{}")
    monkeypatch.setattr(web, "DIST", tmp_path)
    files = web.files()
    assert files["index.html"] == (tmp_path / "index.html").read_bytes()
    assert (files["app.js"], files["app.css"]) == (b"console.log(1)", b"body{}")
    assert {f"images/{name}" for name in web.images()} <= files.keys()


def test_without_a_build_index_says_how_to_make_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web, "DIST", tmp_path / "dist")
    files = web.files()
    assert b"make setup" in files["index.html"]
    assert files["app.js"] == files["app.css"] == b""


def test_an_edge_without_the_storefront_has_no_web_routes(tmp_path: Path) -> None:
    """A pod's edge (deploy/k8s) has no web/ files to serve: no route may point at one."""
    edge = Edge(MeshPlan(topology=load_topology(), address="127.0.0.1", run_dir=tmp_path))
    with_web = config.bootstrap(edge.settings, edge.rpcs, edge.targets(), "127.0.0.1",
                                edge.files())
    without = config.bootstrap(edge.settings, edge.rpcs, edge.targets(), "127.0.0.1",
                               replace(edge.files(), web=""))

    def web_routes(boot: dict[str, Any]) -> list[str]:
        hcm = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        routes = hcm["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
        return [r["name"] for r in routes if r["name"].startswith("web-")]

    assert "web-index" in web_routes(with_web)
    assert web_routes(without) == []
