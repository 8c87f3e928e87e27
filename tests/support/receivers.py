"""Local vendor receivers: real aiohttp servers on 127.0.0.1 that enforce each contract.

Each receiver checks requests the way its vendor documents (required fields, allowed
values, size limits), records what it accepted and what it rejected (with the reason),
and can be told to be down, to answer 500, or to answer 429 with Retry-After. Sink tests
and the end-to-end test post real HTTP to them; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

from aiohttp import web

SLACK_PATH = "/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX"
TEAMS_PATH = "/workflows/abc123/triggers/manual/paths/invoke"
PD_PATH = "/v2/enqueue"
HOOK_PATH = "/hooks/pynomaly"
PD_KEY = "R0UT1NGKEY0123456789ABCDEFGHIJKL"  # 32 characters, like a real integration key


class Invalid(Exception):
    def __init__(self, status: int, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}")
        self.status, self.code, self.detail = status, code, detail


@dataclasses.dataclass
class Fault:
    mode: str  # "500" | "429" | "timeout" | "slow"
    times: int  # how many requests get it; -1 = until cleared
    retry_after: float | None = None
    delay: float = 0.0  # "slow": answer normally after this many seconds


class Receiver:
    """Base: one aiohttp server on a random free port; subclasses validate."""

    path = "/"
    ok_status = 200

    def __init__(self) -> None:
        self.accepted: list[dict[str, Any]] = []
        self.rejected: list[tuple[int, str, str]] = []
        self.requests = 0
        self.headers: list[dict[str, str]] = []
        self.fault: Fault | None = None
        self.port = 0
        self._runner: web.AppRunner | None = None
        self.arrived = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Receiver:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # short shutdown: requests parked by "timeout"/"slow" faults must not hold up stop()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        if not self.port:
            self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def down(self) -> None:
        """Refuse connections (the port stays reserved for :meth:`up`)."""
        await self.stop()

    async def up(self) -> None:
        await self.start()

    def fail(self, mode: str, times: int = -1, retry_after: float | None = None,
             delay: float = 0.0) -> None:
        """Answer the next ``times`` requests with ``mode`` ("500", "429", "timeout", or
        "slow": a normal answer after ``delay`` seconds)."""
        self.fault = Fault(mode, times, retry_after, delay)

    def heal(self) -> None:
        self.fault = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        self.headers.append(dict(request.headers))
        raw = await request.read()
        if self.fault is not None and self.fault.times != 0:
            if self.fault.times > 0:
                self.fault.times -= 1
            if self.fault.mode == "slow":
                await asyncio.sleep(self.fault.delay)
                return await self._answer(request, raw)
            if self.fault.mode == "timeout":
                await asyncio.sleep(3600)
            if self.fault.mode == "429":
                headers = {}
                if self.fault.retry_after is not None:
                    headers["Retry-After"] = str(self.fault.retry_after)
                return self.error_response(429, "rate_limited", "slow down", headers)
            return self.error_response(500, "rollup_error", "injected failure")
        return await self._answer(request, raw)

    async def _answer(self, request: web.Request, raw: bytes) -> web.StreamResponse:
        try:
            if request.method != "POST":
                raise Invalid(405, "method_not_allowed", request.method)
            if request.path != self.path:
                raise Invalid(404, "no_service", f"unknown path {request.path}")
            if not request.content_type.startswith("application/json"):
                raise Invalid(400, "invalid_payload", f"content type {request.content_type}")
            try:
                body = json.loads(raw)
            except ValueError:
                raise Invalid(400, "invalid_payload", "body is not JSON") from None
            self.validate(body, raw, request)
        except Invalid as bad:
            self.rejected.append((bad.status, bad.code, bad.detail))
            return self.error_response(bad.status, bad.code, bad.detail)
        self.accepted.append(body)
        self.arrived.set()
        return self.ok_response(body)

    def validate(self, body: Any, raw: bytes, request: web.Request) -> None:
        raise NotImplementedError

    def ok_response(self, body: Any) -> web.Response:
        return web.Response(status=self.ok_status, text="ok")

    def error_response(self, status: int, code: str, detail: str,
                       headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(status=status, text=code, headers=headers)


def _need(cond: bool, status: int, code: str, detail: str) -> None:
    if not cond:
        raise Invalid(status, code, detail)


def _text_obj(obj: Any, limit: int, where: str, kinds: tuple[str, ...] = ("plain_text", "mrkdwn")) -> None:
    _need(isinstance(obj, dict) and obj.get("type") in kinds, 400, "invalid_blocks",
          f"{where}: text object type must be one of {kinds}")
    text = obj.get("text")
    _need(isinstance(text, str) and 0 < len(text) <= limit, 400, "invalid_blocks",
          f"{where}: text must be 1..{limit} characters")


class SlackReceiver(Receiver):
    """Slack incoming webhook: 200 'ok'; plain-text error codes; Block Kit limits.

    Stricter than Slack in one way: a message with blocks must also carry a ``text``
    fallback (Slack only warns), because notifications and screen readers need it.
    """

    path = SLACK_PATH
    archived = False  # flip to answer 410 channel_is_archived

    def validate(self, body: Any, raw: bytes, request: web.Request) -> None:
        _need(not self.archived, 410, "channel_is_archived", "channel archived")
        _need(isinstance(body, dict), 400, "invalid_payload", "body is not an object")
        text, blocks = body.get("text"), body.get("blocks")
        _need(isinstance(text, str) and text.strip() != "", 400, "no_text", "text is required")
        _need(len(text) <= 40000, 400, "invalid_payload", "text over 40000 characters")
        if blocks is None:
            return
        _need(isinstance(blocks, list) and 0 < len(blocks) <= 50, 400, "invalid_blocks", "1..50 blocks")
        for i, block in enumerate(blocks):
            where = f"blocks[{i}]"
            _need(isinstance(block, dict), 400, "invalid_blocks", f"{where} not an object")
            kind = block.get("type")
            if "block_id" in block:
                _need(len(str(block["block_id"])) <= 255, 400, "invalid_blocks", f"{where}.block_id")
            if kind == "header":
                _text_obj(block.get("text"), 150, where, ("plain_text",))
            elif kind == "section":
                fields = block.get("fields")
                _need("text" in block or fields, 400, "invalid_blocks", f"{where}: text or fields")
                if "text" in block:
                    _text_obj(block["text"], 3000, where)
                if fields is not None:
                    _need(isinstance(fields, list) and 0 < len(fields) <= 10, 400, "invalid_blocks",
                          f"{where}: 1..10 fields")
                    for f in fields:
                        _text_obj(f, 2000, where + ".fields")
            elif kind == "context":
                els = block.get("elements")
                _need(isinstance(els, list) and 0 < len(els) <= 10, 400, "invalid_blocks",
                      f"{where}: 1..10 context elements")
                for e in els:
                    _text_obj(e, 3000, where + ".elements")
            elif kind == "actions":
                els = block.get("elements")
                _need(isinstance(els, list) and 0 < len(els) <= 25, 400, "invalid_blocks",
                      f"{where}: 1..25 action elements")
                for e in els:
                    _need(e.get("type") == "button", 400, "invalid_blocks", f"{where}: only buttons")
                    _text_obj(e.get("text"), 75, where + ".button", ("plain_text",))
                    url = e.get("url", "")
                    _need(isinstance(url, str) and len(url) <= 3000, 400, "invalid_blocks", f"{where}.url")
            elif kind == "divider":
                pass
            else:
                raise Invalid(400, "invalid_blocks", f"{where}: unknown block type {kind!r}")


TEAMS_ELEMENTS = {"TextBlock", "FactSet", "Container", "ColumnSet", "Image", "ActionSet"}


class TeamsReceiver(Receiver):
    """Teams Workflows webhook: message with Adaptive Card attachments; 202; 28 KB limit."""

    path = TEAMS_PATH
    ok_status = 202
    max_bytes = 28 * 1024

    def validate(self, body: Any, raw: bytes, request: web.Request) -> None:
        _need(len(raw) <= self.max_bytes, 413, "RequestEntityTooLarge", f"{len(raw)} bytes")
        _need(isinstance(body, dict) and body.get("type") == "message", 400, "InvalidRequest",
              "type must be 'message'")
        atts = body.get("attachments")
        _need(isinstance(atts, list) and atts, 400, "InvalidRequest", "attachments required")
        for att in atts:
            _need(att.get("contentType") == "application/vnd.microsoft.card.adaptive", 400,
                  "InvalidRequest", "contentType must be application/vnd.microsoft.card.adaptive")
            card = att.get("content")
            _need(isinstance(card, dict) and card.get("type") == "AdaptiveCard", 400,
                  "InvalidRequest", "content.type must be AdaptiveCard")
            _need(isinstance(card.get("version"), str), 400, "InvalidRequest", "card version required")
            body_els = card.get("body")
            _need(isinstance(body_els, list) and body_els, 400, "InvalidRequest", "card body required")
            for el in body_els:
                _need(el.get("type") in TEAMS_ELEMENTS, 400, "InvalidRequest", f"element {el.get('type')}")
                if el["type"] == "TextBlock":
                    _need(isinstance(el.get("text"), str) and el["text"], 400, "InvalidRequest",
                          "TextBlock.text required")
                if el["type"] == "FactSet":
                    for fact in el.get("facts", []):
                        _need(isinstance(fact.get("title"), str) and isinstance(fact.get("value"), str),
                              400, "InvalidRequest", "facts need string title and value")
            for act in card.get("actions", []):
                _need(act.get("type") == "Action.OpenUrl" and isinstance(act.get("url"), str), 400,
                      "InvalidRequest", "only Action.OpenUrl with a url")

    def ok_response(self, body: Any) -> web.Response:
        return web.Response(status=202)


class PagerDutyReceiver(Receiver):
    """Events API v2: 202 with status/dedup_key; 400 'invalid event' with errors."""

    path = PD_PATH
    ok_status = 202

    def __init__(self, routing_key: str = PD_KEY) -> None:
        super().__init__()
        self.routing_key = routing_key
        self.open_alerts: set[str] = set()

    def validate(self, body: Any, raw: bytes, request: web.Request) -> None:
        errs: list[str] = []
        if not isinstance(body, dict):
            raise Invalid(400, "invalid event", "Event object must be an object")
        if body.get("routing_key") != self.routing_key or len(self.routing_key) != 32:
            errs.append("'routing_key' is invalid")
        action = body.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            errs.append("'event_action' must be trigger, acknowledge or resolve")
        dedup = body.get("dedup_key")
        if dedup is not None and (not isinstance(dedup, str) or not 0 < len(dedup) <= 255):
            errs.append("'dedup_key' must be a string of at most 255 characters")
        if action in ("acknowledge", "resolve") and not dedup:
            errs.append("'dedup_key' is required for acknowledge and resolve")
        if action == "trigger":
            p = body.get("payload")
            if not isinstance(p, dict):
                errs.append("'payload' is required")
            else:
                s = p.get("summary")
                if not isinstance(s, str) or not 0 < len(s) <= 1024:
                    errs.append("'payload.summary' must be 1..1024 characters")
                if not isinstance(p.get("source"), str) or not p["source"]:
                    errs.append("'payload.source' is required")
                if p.get("severity") not in ("critical", "error", "warning", "info"):
                    errs.append("'payload.severity' must be critical, error, warning or info")
                if "timestamp" in p:
                    try:
                        datetime.fromisoformat(str(p["timestamp"]).replace("Z", "+00:00"))
                    except ValueError:
                        errs.append("'payload.timestamp' must be ISO 8601")
                if "custom_details" in p and not isinstance(p["custom_details"], dict | list | str):
                    errs.append("'payload.custom_details' must be an object")
            for link in body.get("links", []):
                if not isinstance(link, dict) or not isinstance(link.get("href"), str):
                    errs.append("'links[].href' is required")
        if len(raw) > 512 * 1024:
            errs.append("event is larger than 512 KB")
        if errs:
            raise Invalid(400, "invalid event", json.dumps(errs))
        if action == "trigger":
            self.open_alerts.add(dedup or "generated")
        elif action == "resolve":
            self.open_alerts.discard(dedup)

    def ok_response(self, body: Any) -> web.Response:
        return web.json_response({"status": "success", "message": "Event processed",
                                  "dedup_key": body.get("dedup_key", "generated")}, status=202)

    def error_response(self, status: int, code: str, detail: str,
                       headers: dict[str, str] | None = None) -> web.Response:
        if status == 400:
            return web.json_response({"status": "invalid event", "message": "Event object is invalid",
                                      "errors": json.loads(detail) if detail.startswith("[") else [detail]},
                                     status=400)
        return web.json_response({"status": "error", "message": code}, status=status, headers=headers)

    def events(self, action: str) -> list[dict[str, Any]]:
        return [e for e in self.accepted if e.get("event_action") == action]


class WebhookReceiver(Receiver):
    """Generic webhook: verifies the HMAC-SHA256 signature and the timestamp header."""

    path = HOOK_PATH

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def validate(self, body: Any, raw: bytes, request: web.Request) -> None:
        ts = request.headers.get("X-Pynomaly-Timestamp", "")
        sig = request.headers.get("X-Pynomaly-Signature", "")
        want = "sha256=" + hmac.new(self.secret.encode(), ts.encode() + b"." + raw, hashlib.sha256).hexdigest()
        _need(ts.isdigit(), 401, "bad_timestamp", "X-Pynomaly-Timestamp missing")
        _need(hmac.compare_digest(want, sig), 401, "bad_signature", "signature mismatch")
        _need(isinstance(body, dict) and body.get("type") == "pynomaly.notification", 400,
              "bad_body", "type must be pynomaly.notification")
