"""Session fixtures of the Kubernetes tests: one API server (etcd + kube-apiserver) and
one Consul for the whole run, started on first use and stopped, with their files, after
the last test that uses them."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TypeVar

import pytest

from tests.k8s.servers import Consul, KubeApi, consul_dev, kube_apiserver
from tools.k8s.model import K8sModel

Server = TypeVar("Server")


def _served(factory: pytest.TempPathFactory, name: str,
            start: Callable[[Path], AbstractContextManager[Server]]) -> Iterator[Server]:
    directory = factory.mktemp(name)
    try:
        with start(directory) as server:
            yield server
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def model() -> K8sModel:
    return K8sModel.load()


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApi]:
    yield from _served(tmp_path_factory, "kube-apiserver", kube_apiserver)


@pytest.fixture(scope="session")
def consul(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consul]:
    yield from _served(tmp_path_factory, "consul-dev", consul_dev)
