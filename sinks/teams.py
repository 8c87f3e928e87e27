"""Microsoft Teams sink: an Adaptive Card posted to a Teams Workflows webhook.

Contract (Microsoft docs: "post a workflow when a webhook request is received", Teams
limits): POST ``{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "content": <AdaptiveCard>}]}``; the Workflows
trigger answers 202 Accepted (legacy connectors answered 200). Messages are limited to
about 28 KB; larger ones fail with 413. 429 means throttled (retry with backoff).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from sinks.errors import SinkError
from sinks.http import WebhookPoster, status_error
from sinks.notification import Notification, iso, score_text, truncate

log = logging.getLogger(__name__)

MAX_BYTES = 28 * 1024
CARD_VERSION = "1.4"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
COLOR = {"info": "Accent", "warning": "Warning", "error": "Attention", "critical": "Attention"}


def card(n: Notification, top_n: int) -> dict[str, Any]:
    """The Adaptive Card for ``n`` listing at most ``top_n`` group members."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": truncate(n.title, 300), "weight": "Bolder", "size": "Medium",
         "wrap": True, "color": "Good" if n.is_resolve else COLOR.get(n.severity, "Default")},
        {"type": "FactSet", "facts": [
            {"title": k, "value": truncate(v, 500)} for k, v in n.summary_fields().items()
        ]},
    ]
    if n.is_group and n.members and top_n > 0:
        lines = [f"- {m.stream}: {m.severity}, peak {score_text(m.peak_score)}, since {iso(m.opened_at)}"
                 for m in n.members[:top_n]]
        if n.member_count > len(lines):
            lines.append(f"- …and {n.member_count - len(lines)} more")
        body.append({"type": "TextBlock", "text": "\n".join(lines), "wrap": True})
    content: dict[str, Any] = {"$schema": CARD_SCHEMA, "type": "AdaptiveCard",
                               "version": CARD_VERSION, "body": body}
    actions = [{"type": "Action.OpenUrl", "title": title, "url": url}
               for title, url in (("Open in explorer", n.explore_url), ("Open dashboard", n.dashboard_url)) if url]
    if actions:
        content["actions"] = actions
    return content


def render(n: Notification, top_n: int = 10) -> dict[str, Any]:
    """The Workflows message for ``n``, shrunk (fewer listed members) to fit 28 KB."""
    while True:
        msg = {"type": "message", "attachments": [
            {"contentType": CONTENT_TYPE, "contentUrl": None, "content": card(n, top_n)}]}
        if len(orjson.dumps(msg)) <= MAX_BYTES or top_n == 0:
            return msg
        top_n //= 2


class TeamsSink(WebhookPoster):
    """Posts to one Teams Workflows webhook URL (a secret: never logged)."""

    default_name = "teams"

    async def send(self, n: Notification) -> None:
        body = orjson.dumps(render(n, self.top_n))
        if len(body) > MAX_BYTES:
            raise SinkError(f"{self.name}: card is {len(body)} bytes even without the member list, "
                            f"over Teams' {MAX_BYTES} limit; shorten stream names or tags",
                            retriable=False, sink=self.name)
        resp = await self.post(body)
        if resp.status in (200, 202):
            return
        hints = {
            400: "Teams rejected the card; this is a rendering bug, please report it",
            401: "the workflow refused the request; recreate the webhook URL",
            403: "the workflow refused the request; recreate the webhook URL",
            404: "the workflow no longer exists; create a new one and update the URL",
            413: "the card is larger than Teams accepts; please report it",
            429: "throttled by Teams; retrying after backoff",
        }
        hint = hints.get(resp.status, "unexpected answer from Teams")
        log.warning("teams webhook %s rejected a notification: HTTP %d", self.name, resp.status)
        raise status_error(self.name, resp, None, hint)
