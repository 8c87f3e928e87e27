"""SASL and TLS settings, translated for Faust and for aiokafka clients."""

from __future__ import annotations

import ssl
from typing import Any

import faust

from streams.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if "SSL" not in settings.kafka_security_protocol:
        return None
    ctx = ssl.create_default_context(cafile=settings.kafka_ssl_cafile or None)
    if settings.kafka_ssl_certfile:
        ctx.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile or None)
    return ctx


def faust_credentials(settings: Settings) -> Any:
    proto = settings.kafka_security_protocol
    if proto == "PLAINTEXT":
        return None
    ctx = ssl_context(settings)
    if proto == "SSL":
        return faust.SSLCredentials(ctx)
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password.reveal(),
        mechanism=settings.kafka_sasl_mechanism,
        ssl_context=ctx,
    )


def aiokafka_auth_kwargs(settings: Settings) -> dict[str, Any]:
    proto = settings.kafka_security_protocol
    kw: dict[str, Any] = {"security_protocol": proto}
    if "SSL" in proto:
        kw["ssl_context"] = ssl_context(settings)
    if proto.startswith("SASL"):
        kw["sasl_mechanism"] = settings.kafka_sasl_mechanism
        kw["sasl_plain_username"] = settings.kafka_sasl_username
        kw["sasl_plain_password"] = settings.kafka_sasl_password.reveal()
    return kw
