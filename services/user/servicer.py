"""UserService over gRPC: validate, call UserAccounts, map to protobuf."""

from __future__ import annotations

from typing import Any

from meshmart.user.v1 import user_pb2, user_pb2_grpc

from services.kit import validate
from services.kit.context import ensure_caller_may_act_for
from services.kit.server import ServiceSpec
from services.user.domain import UserAccounts
from services.user.events import user_message

SERVICE_NAME = "meshmart.user.v1.UserService"


class UserServicer(user_pb2_grpc.UserServiceServicer):
    def __init__(self, accounts: UserAccounts) -> None:
        self._accounts = accounts

    async def Register(
        self, request: user_pb2.RegisterRequest, context: Any
    ) -> user_pb2.RegisterResponse:
        user = await self._accounts.register(
            email=validate.email(request.email, "email"),  # normalised: trimmed, lower-case
            password=request.password,
            full_name=request.full_name.strip(),
        )
        return user_pb2.RegisterResponse(user=user_message(user))

    async def Login(self, request: user_pb2.LoginRequest, context: Any) -> user_pb2.LoginResponse:
        session = await self._accounts.login(email=request.email.strip(), password=request.password)
        return user_pb2.LoginResponse(
            access_token=session.access_token.token,
            token_type="Bearer",
            expires_in=session.access_token.expires_in,
            user=user_message(session.user),
        )

    async def GetUser(
        self, request: user_pb2.GetUserRequest, context: Any
    ) -> user_pb2.GetUserResponse:
        ensure_caller_may_act_for(context, request.user_id)
        return user_pb2.GetUserResponse(
            user=user_message(await self._accounts.db.run(self._accounts.get, request.user_id))
        )

    async def UpdateProfile(
        self, request: user_pb2.UpdateProfileRequest, context: Any
    ) -> user_pb2.UpdateProfileResponse:
        user_id = request.user_id
        ensure_caller_may_act_for(context, user_id)
        full_name = request.full_name.strip() if request.HasField("full_name") else None
        phone = request.phone.strip() if request.HasField("phone") else None
        email = validate.email(request.email, "email") if request.HasField("email") else None
        user = await self._accounts.db.run(
            self._accounts.update_profile, user_id, full_name=full_name, phone=phone, email=email
        )
        return user_pb2.UpdateProfileResponse(user=user_message(user))


def service_spec(servicer: UserServicer) -> ServiceSpec:
    return ServiceSpec(
        name=SERVICE_NAME,
        add=lambda server: user_pb2_grpc.add_UserServiceServicer_to_server(servicer, server),
    )
