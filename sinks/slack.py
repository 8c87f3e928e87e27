"""Slack incoming-webhook sink: Block Kit ``blocks`` plus a plain ``text`` fallback.

Contract (Slack docs: incoming webhooks, Block Kit reference): POST JSON to the webhook
URL; 200 with body ``ok`` means accepted. Errors come back as a plain-text code:
400 invalid_payload / no_text / user_not_found, 403 action_prohibited, 404
channel_not_found / no_service, 410 channel_is_archived, 500 rollup_error, 429 with
Retry-After when posting faster than about one message per second per webhook.
Block limits enforced here: at most 50 blocks, header text <= 150 chars, section text
<= 3000, at most 10 section fields of <= 2000 each, button text <= 75, URL <= 3000.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from sinks.http import Response, WebhookPoster, status_error
from sinks.notification import Notification, iso, score_text, truncate

log = logging.getLogger(__name__)

MAX_BLOCKS = 50
MAX_HEADER = 150
MAX_SECTION_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_BUTTON_TEXT = 75
MAX_URL = 3000
MAX_FALLBACK_TEXT = 3000  # Slack truncates at 40,000; keep notifications readable

# Codes Slack documents for incoming webhooks, with what the operator should do.
ERROR_HINTS = {
    "invalid_payload": "Slack could not parse the message; this is a rendering bug, please report it",
    "no_text": "the message had no text; this is a rendering bug, please report it",
    "user_not_found": "the webhook's target user no longer exists; create a new webhook",
    "channel_not_found": "the webhook's channel no longer exists; create a new webhook",
    "channel_is_archived": "the webhook's channel is archived; unarchive it or use a new webhook",
    "action_prohibited": "a workspace admin restricted this webhook; ask them or use another",
    "invalid_blocks": "Slack rejected the blocks; this is a rendering bug, please report it",
    "no_service": "the webhook was revoked or disabled; create a new one",
    "rollup_error": "Slack had an internal error; the send will be retried",
}
SEVERITY_EMOJI = {"info": ":information_source:", "warning": ":warning:",
                  "error": ":red_circle:", "critical": ":rotating_light:"}


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render(n: Notification, top_n: int = 10) -> dict[str, Any]:
    """The Slack message body for ``n``: Block Kit blocks and a fallback ``text``."""
    emoji = ":white_check_mark:" if n.is_resolve else SEVERITY_EMOJI.get(n.severity, "")
    blocks: list[dict[str, Any]] = [
        {"type": "header",
         "text": {"type": "plain_text", "text": truncate(n.title, MAX_HEADER), "emoji": True}},
    ]
    fields = [
        {"type": "mrkdwn", "text": truncate(f"*{escape(k)}*\n{escape(v)}", MAX_FIELD_TEXT)}
        for k, v in n.summary_fields().items() if k != "Incident"  # the id is in the context block
    ][:MAX_FIELDS]
    blocks.append({"type": "section", "fields": fields})
    if n.is_group and n.members:
        lines = [
            f"• `{escape(m.stream)}` {m.severity}, peak {score_text(m.peak_score)}, since {iso(m.opened_at)}"
            for m in n.members[:top_n]
        ]
        more = n.member_count - len(lines)
        if more > 0:
            lines.append(f"…and {more} more")
        blocks.append({"type": "section",
                       "text": {"type": "mrkdwn", "text": truncate("\n".join(lines), MAX_SECTION_TEXT)}})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": truncate(
            f"{emoji} incident `{escape(n.incident_id)}` · detector {escape(n.detector)}", MAX_FIELD_TEXT)},
    ]})
    buttons = [{"type": "button", "text": {"type": "plain_text", "text": text}, "url": url, "action_id": action}
               for text, url, action in (("Open in explorer", n.explore_url, "open_explorer"),
                                         ("Open dashboard", n.dashboard_url, "open_dashboard"))
               if url and len(url) <= MAX_URL]
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    fallback = n.title + " | " + " | ".join(f"{k}: {v}" for k, v in n.summary_fields().items())
    return {"text": truncate(escape(fallback), MAX_FALLBACK_TEXT), "blocks": blocks[:MAX_BLOCKS]}


class SlackSink(WebhookPoster):
    """Posts to one Slack incoming webhook. The URL is a secret and never logged."""

    default_name = "slack"

    async def send(self, n: Notification) -> None:
        body = orjson.dumps(render(n, self.top_n))
        resp = await self.post(body)
        if resp.status == 200:
            return
        raise self._error(resp)

    def _error(self, resp: Response) -> Exception:
        code = resp.text.strip().split()[0] if resp.text.strip() else None
        if resp.status == 429:
            return status_error(self.name, resp, "rate_limited",
                                "posting faster than ~1 message/s; retrying after Retry-After")
        hint = ERROR_HINTS.get(code or "", "unexpected answer from Slack")
        if code not in ERROR_HINTS:
            code = None  # do not echo arbitrary bodies into logs
        log.warning("slack webhook %s rejected a notification: HTTP %d %s", self.name,
                    resp.status, code or "(unknown code)")
        return status_error(self.name, resp, code, hint)
