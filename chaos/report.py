"""The table a run prints, the story of each violation, and the JSON report.

A story is every recorded event that touches the messages and keys of one
example, in the order they were sent, with the faults of that time span
between them: enough for a person to replay what the server was asked and
what it answered. Receipts are shown as ``R<n>`` (numbered in the order
they were handed out), with the consumer that got them.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from chaos.checker import Verdict
from chaos.history import History, Stored

WIDTH = 64


def table(verdict: Verdict, title: list[str]) -> str:
    lines = [*title, "", f"{'check':<{WIDTH}} {'count':>7}  must be"]
    section = ""
    for row in verdict.rows:
        if row.section != section:
            section = row.section
            lines.append(section)
        mark = "  <-- VIOLATED" if row.violated else ""
        lines.append(f"  {row.check:<{WIDTH - 2}} {row.count:>7}  {row.rule}{mark}")
    lines.append("")
    if verdict.ok:
        lines.append("verdict: OK, no violation")
    else:
        lines.append(f"verdict: FAILED, {verdict.violations} violation(s)")
    return "\n".join(lines)


class Stories:
    """Tells the story of a set of keys and message ids from the history."""

    def __init__(self, history: History, stored: list[Stored]) -> None:
        self.history = history
        self.labels: dict[str, str] = {}
        for claim in history.claims:
            for lease in claim.leases:
                self.labels.setdefault(lease.receipt, f"R{len(self.labels) + 1}")
        self.key_of = {s.message_id: s.key for s in stored if s.key}
        for post in history.posts:
            for key, answer in zip(post.keys, post.answers, strict=False):
                self.key_of.setdefault(answer.message_id, key)
        self.stored = {s.message_id: s for s in stored}

    def _label(self, receipt: str) -> str:
        return self.labels.get(receipt, f"<unknown receipt {receipt[:12]}…>")

    def tell(self, keys: set[str], messages: set[str], group: str | None = None) -> list[str]:
        """The events of these keys and messages; of one group's consumers only, if given."""
        keys = keys | {self.key_of[m] for m in messages if m in self.key_of}
        messages = messages | {m for m, k in self.key_of.items() if k in keys}
        events: list[tuple[float, str]] = []
        h = self.history

        def span(sent: float, done: float | None) -> str:
            return f"{sent:8.3f}s-{'   never' if done is None else f'{done:8.3f}s'}"

        for post in h.posts:
            if not keys & set(post.keys):
                continue
            if post.status is None:
                outcome = f"no answer ({post.error})"
            elif post.status == 201:
                outcome = "201 " + ", ".join(
                    f"{k}={a.message_id} p{a.partition} ts={a.timestamp}"
                    for k, a in zip(post.keys, post.answers, strict=False)
                    if k in keys
                )
            else:
                outcome = f"{post.status} {post.error}"
            purpose = " (re-send on purpose)" if post.on_purpose else ""
            events.append(
                (
                    post.sent,
                    f"{span(post.sent, post.done)}  {post.actor:<14} POST keys "
                    f"{','.join(post.keys)}{purpose} -> {outcome}",
                )
            )
        claims = [c for c in h.claims if group is None or c.group == group]
        for claim in claims:
            mine = [lease for lease in claim.leases if lease.message_id in messages]
            for lease in mine:
                events.append(
                    (
                        claim.sent,
                        f"{span(claim.sent, claim.done)}  {claim.actor:<14} claim "
                        f"{claim.group} -> {lease.message_id} deliveries={lease.deliveries} "
                        f"receipt {self._label(lease.receipt)}",
                    )
                )
        receipts = {
            lease.receipt for c in claims for lease in c.leases if lease.message_id in messages
        }
        for ack in h.acks:
            if not receipts & set(ack.receipts):
                continue
            sent = ",".join(self._label(r) for r in ack.receipts)
            if ack.status is None:
                outcome = f"no answer ({ack.error})"
            else:
                accepted = ",".join(self._label(r) for r in ack.accepted)
                lost = ",".join(self._label(r) for r in ack.lost)
                outcome = f"{ack.status} acknowledged=[{accepted}] lost=[{lost}]"
                if ack.status not in (200, 409):
                    outcome += f" {ack.error}"
            events.append(
                (
                    ack.sent,
                    f"{span(ack.sent, ack.done)}  {ack.actor:<14} ack {ack.group} "
                    f"[{sent}] -> {outcome}",
                )
            )
        if events:
            first, last = min(t for t, _ in events), max(t for t, _ in events)
            for fault in h.faults:
                if first - 2 <= fault.at <= last + 2:
                    events.append((fault.at, f"{fault.at:8.3f}s            ----- {fault.what}"))
        events.sort(key=lambda e: e[0])
        found = [m for m in sorted(messages) if m in self.stored]
        head = (
            f"keys {sorted(keys) or '-'}; messages {sorted(messages) or '-'}; "
            f"in the final range read: {found or 'none'}"
        )
        return [head, *(text for _, text in events)]


def stories(verdict: Verdict, history: History, stored: list[Stored]) -> dict[str, list[str]]:
    teller = Stories(history, stored)
    told: dict[str, list[str]] = {}
    for check in verdict.details.keys() - verdict.examples.keys():
        told[check] = list(verdict.details[check])
    for check, examples in verdict.examples.items():
        section = check.split(": ")[0]  # "alo (at_least_once)" for a group's check
        group = section.split(" (")[0] if " (" in section else None
        lines: list[str] = [*verdict.details.get(check, [])]
        if lines:
            lines += ["", "stories of the first examples:"]
        for keys, messages in examples:
            lines.extend(teller.tell(keys, messages, group))
            lines.append("")
        told[check] = lines
    return told


def render_stories(told: dict[str, list[str]]) -> str:
    out: list[str] = []
    for check, lines in told.items():
        out.append(f"== {check}")
        out.extend(f"   {line}" if line else "" for line in lines)
    return "\n".join(out)


def as_json(
    verdict: Verdict, told: dict[str, list[str]], settings: dict[str, Any]
) -> dict[str, Any]:
    return {
        **settings,
        "ok": verdict.ok,
        "violations": verdict.violations,
        "rows": [{**asdict(r), "violated": r.violated} for r in verdict.rows],
        "stories": told,
    }
