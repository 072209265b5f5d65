"""A small REST client of the edge for the tests: the calls a browser or curl would make."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import requests

TIMEOUT = 15.0
RETRIES_ON_429 = 15
VISA_OK = {"number": "4242424242424242", "expMonth": 12, "expYear": 2030, "cvc": "123"}
ADDRESS = {"name": "Ada Buyer", "line1": "1 Mesh Street", "city": "Berlin",
           "postalCode": "10115", "country": "DE"}


@dataclass(frozen=True)
class User:
    user_id: str
    email: str
    password: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class EdgeClient:
    base_url: str
    session: requests.Session

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", TIMEOUT)
        return self.session.request(method, self.base_url + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("POST", path, **kwargs)

    def polite(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A call that honours 429s the way a good client does: waits `retry-after` and
        tries again (bounded). For setup steps (sign-up, login) that other tests' bursts
        from this same client address may have rate-limited."""
        for _ in range(RETRIES_ON_429):
            response = self.call(method, path, **kwargs)
            if response.status_code != 429:
                return response
            time.sleep(float(response.headers.get("retry-after", "1")))
        return response

    def register(self, password: str = "correct horse") -> tuple[str, str]:
        email = f"edge-{uuid.uuid4().hex[:12]}@example.com"
        response = self.polite(
            "POST", "/api/v1/users",
            json={"email": email, "password": password, "fullName": "Ada"})
        assert response.status_code == 200, response.text
        return response.json()["user"]["userId"], email

    def login(self, email: str, password: str) -> requests.Response:
        return self.post("/api/v1/sessions", json={"email": email, "password": password})

    def new_user(self) -> User:
        password = "correct horse"
        user_id, email = self.register(password)
        response = self.polite("POST", "/api/v1/sessions",
                               json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["tokenType"] == "Bearer" and body["user"]["userId"] == user_id
        return User(user_id, email, password, body["accessToken"])


def error_of(response: requests.Response) -> dict[str, Any]:
    """The JSON error body every failed call carries: {code, message, details}."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "details"}, body
    assert isinstance(body["code"], int) and body["code"] != 0, body
    return body
