"""Session fixtures of the Kubernetes tests: one API server (etcd + kube-apiserver) and
one Consul for the whole run, started on first use and stopped, with their files, after
the last test that uses them."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.k8s.servers import Consul, KubeApi, consul_dev, kube_apiserver
from tools.k8s.model import K8sModel


@pytest.fixture(scope="session")
def model() -> K8sModel:
    return K8sModel.load()


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApi]:
    directory = tmp_path_factory.mktemp("kube-apiserver")
    try:
        with kube_apiserver(directory) as api:
            yield api
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def consul(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consul]:
    directory = tmp_path_factory.mktemp("consul-dev")
    try:
        with consul_dev(directory) as agent:
            yield agent
    finally:
        shutil.rmtree(directory, ignore_errors=True)
