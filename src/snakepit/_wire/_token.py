"""The per-pool token on gRPC over TCP: a server interceptor both gRPC servers use."""

from __future__ import annotations

import hmac
from typing import Any

from snakepit._wire._constants import TOKEN_HEADER

__all__ = ["token_interceptor"]


def token_interceptor(token: str) -> Any:
    """A ``grpc.aio`` server interceptor that rejects calls without ``token`` (health checks
    pass: they say nothing and change nothing)."""
    import grpc

    class TokenCheck(grpc.aio.ServerInterceptor):  # type: ignore[misc,type-arg,unused-ignore]
        async def intercept_service(self, continuation: Any, details: Any) -> Any:
            return await _check(continuation, details)

    async def _check(continuation: Any, details: Any) -> Any:
        for key, value in details.invocation_metadata or ():
            if key == TOKEN_HEADER and hmac.compare_digest(str(value), token):
                return await continuation(details)
        if details.method.startswith("/grpc.health.v1.Health/"):
            return await continuation(details)

        async def deny(request: Any, context: Any) -> Any:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"missing or wrong {TOKEN_HEADER}")

        return grpc.unary_unary_rpc_method_handler(deny)

    return TokenCheck()
