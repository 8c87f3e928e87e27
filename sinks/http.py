"""One place that POSTs JSON with aiohttp and turns transport failures into SinkError.

Webhook URLs are secrets (the path is the credential), so nothing here ever formats a
URL or an aiohttp exception text (which embeds the URL) into a message.
"""

from __future__ import annotations

import dataclasses
import email.utils
import time
from collections.abc import Mapping

import aiohttp

from sinks.errors import SinkError

DEFAULT_TIMEOUT_S = 10.0
# Answers are read up to this many bytes: an error code and a short text is all a sink
# needs, and a receiver streaming without end must not hold it until its timeout.
MAX_RESPONSE_BYTES = 64 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class Response:
    status: int
    text: str
    headers: Mapping[str, str]


class HttpPoster:
    """A lazily created aiohttp session shared by one sink; close it on shutdown."""

    def __init__(self, sink: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.sink = sink
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, body: bytes, headers: Mapping[str, str] | None = None) -> Response:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        all_headers = {"Content-Type": "application/json"}
        all_headers.update(headers or {})
        try:
            # No redirects: a receiver (or whoever controls its DNS) could send the signed
            # POST to an internal address.
            async with self._session.post(url, data=body, headers=all_headers,
                                          allow_redirects=False) as resp:
                raw = await resp.content.read(MAX_RESPONSE_BYTES)
                text = raw.decode(resp.charset or "utf-8", errors="replace")
                if 300 <= resp.status < 400:
                    raise SinkError(
                        f"{self.sink}: the receiver redirected (HTTP {resp.status}); redirects are "
                        "not followed: configure the final URL", retriable=False, sink=self.sink,
                        status=resp.status)
                return Response(resp.status, text[:2000], dict(resp.headers))
        except TimeoutError:
            raise SinkError(
                f"{self.sink}: no answer within {self.timeout.total:.0f}s (receiver slow or down)",
                retriable=True,
                sink=self.sink,
            ) from None
        except aiohttp.InvalidURL:
            raise SinkError(
                f"{self.sink}: the configured URL is not a valid http(s) URL; fix the sink's URL "
                "setting",
                retriable=False,
                sink=self.sink,
            ) from None
        except aiohttp.ClientError as exc:
            # type name only: str(exc) would include the secret URL
            raise SinkError(
                f"{self.sink}: could not reach the receiver ({type(exc).__name__})",
                retriable=True,
                sink=self.sink,
            ) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
    raw = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if raw is None:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def status_error(sink: str, resp: Response, code: str | None, hint: str) -> SinkError:
    """SinkError for a non-success answer: 408/429/5xx retriable, other 4xx final."""
    retriable = resp.status in (408, 429) or resp.status >= 500
    named = f" {code}" if code else ""
    return SinkError(
        f"{sink}: HTTP {resp.status}{named}; {hint}",
        retriable=retriable,
        retry_after=retry_after(resp.headers) if retriable else None,
        sink=sink,
        status=resp.status,
        code=code,
    )


class WebhookPoster:
    """What the chat sinks share: one webhook URL (a secret: kept out of repr and logs), an
    HTTP poster with its timeout, and how many group members a message lists."""

    default_name = "webhook"

    def __init__(self, webhook_url: str, name: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 top_n: int = 10) -> None:
        self.name = name or self.default_name
        self._url = str.__str__(webhook_url)  # a plain str, whatever Secret wrapper came in
        self._http = HttpPoster(self.name, timeout_s)
        self.top_n = top_n

    async def post(self, body: bytes) -> Response:
        return await self._http.post(self._url, body)

    async def close(self) -> None:
        await self._http.close()
