"""The invariants, checked on the recorded history, per message, Jepsen-style.

Every check draws only conclusions that hold whatever the server did between
sending a request and its answer: a request was handled at some moment in
``[sent, done]``, and a request without an answer may or may not have been.

Publishing (SPEC §3):

- **acknowledged posts missing** — a key answered 201 whose message id the
  final range read does not show;
- **keys answered with different messages** — two 201 answers for one key
  that differ in id, timestamp or partition;
- **duplicates stored** — a key whose body the range read shows more than once;
- **messages this run never posted** — stored bodies with no key of this run.

Per group (SPEC §6, "The guarantees, precisely"), over every message that is
stored or was answered 201:

- at_most_once: **delivered more than once** (two leases, or a ``deliveries``
  above 1); **acks refused** (every ack is accepted);
- at_least_once: **without an accepted ack** (each needs ≥ 1);
- exactly_once: **without an accepted ack**, **more than one accepted ack**
  (distinct receipts; a retried ack of the accepted receipt is that one ack),
  **acks accepted after their lease expired** (every attempt sent after the
  lease's end, counted from the claim's answer: must be refused with 409);
- at_least_once and exactly_once: **redelivered after an accepted ack**
  (claim sent after the accepting answer came), **leased to two consumers at
  once** (a delivery whose claim was answered before the previous lease could
  have ended, or two deliveries with one ``deliveries`` number), **acks
  accepted after the message was leased again** (the next delivery's claim
  answered before the ack was first sent);
- every group: **acks whose outcome stayed unknown** (the run could not
  judge them), **deliveries of messages not stored**, **left pending or in
  flight after the drain**, **acknowledged counter ≠ messages stored**.

Plus **unexpected answers**: a status the contract does not allow here
(posts 201/503, claims 200/503, acks 200/409/503) or a body that contradicts
it (an ack answer that does not split the receipts into acknowledged and
lost, a 200 with lost receipts, a 201 without an answer per item).
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from chaos.consumers import GroupSpec
from chaos.history import Ack, Answer, Claim, History, Lease, Post, Stored

#: Slack for clock granularity between this process and the server (same machine).
EPSILON = 0.05
MUST_BE_ZERO = "= 0"
INFO = ""


@dataclass(frozen=True, slots=True)
class Row:
    section: str
    check: str
    count: int
    rule: str = INFO

    @property
    def violated(self) -> bool:
        return self.rule == MUST_BE_ZERO and self.count != 0


@dataclass
class Verdict:
    rows: list[Row] = field(default_factory=list)
    #: For each violated check, examples: (keys, message ids) whose story to tell.
    examples: dict[str, list[tuple[set[str], set[str]]]] = field(default_factory=dict)
    #: For each violated check, lines that name the offending requests themselves.
    details: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(row.violated for row in self.rows)

    @property
    def violations(self) -> int:
        return sum(row.count for row in self.rows if row.violated)


@dataclass(frozen=True, slots=True)
class Delivery:
    claim: Claim
    lease: Lease


class Checker:
    def __init__(
        self,
        history: History,
        stored: list[Stored],
        states: dict[str, dict[str, Any]],
        groups: list[GroupSpec],
    ) -> None:
        self.history = history
        self.stored = stored
        self.states = states
        self.groups = groups
        self.verdict = Verdict()
        self.stored_ids = {s.message_id for s in stored}
        self.answers: dict[str, dict[Answer, None]] = defaultdict(dict)
        for post in history.posts:
            if post.status == 201 and len(post.answers) == len(post.keys):
                for key, answer in zip(post.keys, post.answers, strict=True):
                    self.answers[key][answer] = None
        self.universe = self.stored_ids | {a.message_id for d in self.answers.values() for a in d}
        self.message_of = {
            lease.receipt: lease.message_id for c in history.claims for lease in c.leases
        }

    def row(
        self,
        section: str,
        check: str,
        count: int,
        rule: str = INFO,
        examples: list[tuple[set[str], set[str]]] | None = None,
    ) -> None:
        row = Row(section, check, count, rule)
        self.verdict.rows.append(row)
        if row.violated and examples:
            self.verdict.examples[f"{section}: {check}"] = examples[:3]

    def run(self) -> Verdict:
        self.publishing()
        for group in self.groups:
            self.group(group)
        self.answers_allowed()
        return self.verdict

    # -- publishing ------------------------------------------------------------------

    def publishing(self) -> None:
        posts = self.history.posts
        section = "publishing"
        posted = {k for p in posts for k in p.keys}
        statuses = Counter(p.status for p in posts)
        self.row(section, "post requests", len(posts))
        self.row(section, "  answered 201", statuses[201])
        self.row(section, "  answered 503", statuses[503])
        self.row(section, "  no answer (outcome unknown)", statuses[None])
        self.row(
            section,
            "  re-sending keys already answered 201, on purpose",
            sum(p.on_purpose for p in posts),
        )
        self.row(section, "idempotency keys posted", len(posted))
        self.row(section, "  acknowledged (answered 201)", len(self.answers))
        self.row(
            section,
            "  never answered 201 (may be stored once or not)",
            len(posted - set(self.answers)),
        )
        self.row(section, "messages stored (range read)", len(self.stored))

        missing = {
            k: {a.message_id for a in d if a.message_id not in self.stored_ids}
            for k, d in self.answers.items()
        }
        missing = {k: ids for k, ids in missing.items() if ids}
        self.row(
            section,
            "acknowledged posts missing",
            len(missing),
            MUST_BE_ZERO,
            [({k}, ids) for k, ids in missing.items()],
        )
        split = {k: d for k, d in self.answers.items() if len(d) > 1}
        self.row(
            section,
            "keys answered 201 with different messages",
            len(split),
            MUST_BE_ZERO,
            [({k}, {a.message_id for a in d}) for k, d in split.items()],
        )
        by_key: dict[str | None, set[str]] = defaultdict(set)
        for s in self.stored:
            by_key[s.key].add(s.message_id)
        twice = {k: ids for k, ids in by_key.items() if k is not None and len(ids) > 1}
        self.row(
            section,
            "duplicates stored (one key, several messages)",
            len(twice),
            MUST_BE_ZERO,
            [({k}, ids) for k, ids in twice.items() if k],
        )
        foreign = [s.message_id for s in self.stored if s.key is None or s.key not in posted]
        self.row(
            section,
            "stored messages this run never posted",
            len(foreign),
            MUST_BE_ZERO,
            [(set(), {m}) for m in foreign],
        )

    # -- groups ----------------------------------------------------------------------

    def group(self, group: GroupSpec) -> None:
        section = f"{group.name} ({group.guarantee})"
        claims = [c for c in self.history.claims if c.group == group.name]
        acks = [a for a in self.history.acks if a.group == group.name]
        deliveries: dict[str, list[Delivery]] = defaultdict(list)
        by_receipt: dict[str, Delivery] = {}
        for claim in claims:
            for lease in claim.leases:
                delivery = Delivery(claim, lease)
                deliveries[lease.message_id].append(delivery)
                by_receipt[lease.receipt] = delivery
        accepted: dict[str, list[Ack]] = defaultdict(list)  # receipt -> accepting answers
        refused: set[str] = set()
        first_sent: dict[str, float] = {}
        for ack in acks:
            for receipt in ack.receipts:
                first_sent.setdefault(receipt, ack.sent)
            for receipt in ack.accepted:
                accepted[receipt].append(ack)
            refused.update(ack.lost)
        accepted_of: dict[str, set[str]] = defaultdict(set)  # message -> accepted receipts
        for receipt in accepted:
            if receipt in by_receipt:
                accepted_of[by_receipt[receipt].lease.message_id].add(receipt)

        leases = sum(len(c.leases) for c in claims)
        self.row(section, "claims", len(claims))
        self.row(section, "deliveries (messages handed out)", leases)
        self.row(section, "  redeliveries", leases - len(deliveries))
        self.row(section, "ack requests", len(acks))
        self.row(section, "  receipts accepted", len(accepted))
        self.row(section, "  receipts refused (409 LeaseLost)", len(refused - set(accepted)))

        if group.guarantee == "at_most_once":
            more = [m for m, ds in deliveries.items() if len(ds) > 1 or ds[0].lease.deliveries > 1]
            self.row(
                section,
                "messages never delivered (allowed: lost at most once)",
                len(self.universe - set(deliveries)),
            )
            self.row(
                section,
                "messages delivered more than once (≤ 1 each)",
                len(more),
                MUST_BE_ZERO,
                [(set(), {m}) for m in more],
            )
            lost = [r for r in refused if r in by_receipt]
            self.row(
                section,
                "acks refused (at_most_once accepts every ack)",
                len(lost),
                MUST_BE_ZERO,
                [(set(), {by_receipt[r].lease.message_id}) for r in lost],
            )
        else:
            none = sorted(m for m in self.universe if not accepted_of.get(m))
            rule = "(≥ 1 each)" if group.guarantee == "at_least_once" else "(exactly 1 each)"
            self.row(
                section,
                f"messages without an accepted ack {rule}",
                len(none),
                MUST_BE_ZERO,
                [(set(), {m}) for m in none],
            )
            if group.guarantee == "exactly_once":
                many = sorted(m for m, rs in accepted_of.items() if len(rs) > 1)
                self.row(
                    section,
                    "messages with more than one accepted ack",
                    len(many),
                    MUST_BE_ZERO,
                    [(set(), {m}) for m in many],
                )
                stale = [
                    r
                    for r in accepted
                    if r in by_receipt and self._expired(by_receipt[r], group, first_sent[r])
                ]
                self.row(
                    section,
                    "acks accepted after their lease expired (must be 409)",
                    len(stale),
                    MUST_BE_ZERO,
                    [(set(), {by_receipt[r].lease.message_id}) for r in stale],
                )
            self.leases(section, group, deliveries, accepted, by_receipt, first_sent)

        unknown = [r for r in first_sent if r not in accepted and r not in refused]
        self.row(
            section, "acks whose outcome stayed unknown (cannot judge)", len(unknown), MUST_BE_ZERO
        )
        strays = sorted(m for m in deliveries if m not in self.stored_ids)
        self.row(
            section,
            "deliveries of messages not in the queue",
            len(strays),
            MUST_BE_ZERO,
            [(set(), {m}) for m in strays],
        )
        self.state(section, group, set(deliveries))

    def _expired(self, delivery: Delivery, group: GroupSpec, sent: float) -> bool:
        """Whether every attempt to acknowledge was sent after the lease surely ended."""
        answered = delivery.claim.done
        return answered is not None and sent > answered + group.lease_seconds + EPSILON

    def leases(
        self,
        section: str,
        group: GroupSpec,
        deliveries: dict[str, list[Delivery]],
        accepted: dict[str, list[Ack]],
        by_receipt: dict[str, Delivery],
        first_sent: dict[str, float],
    ) -> None:
        """The lease rules of at_least_once and exactly_once."""
        after_ack: list[str] = []
        overlapping: list[str] = []
        after_relet: list[str] = []
        for message, ds in deliveries.items():
            acked_at = [
                a.done for d in ds for a in accepted.get(d.lease.receipt, []) if a.done is not None
            ]
            if acked_at and any(d.claim.sent > min(acked_at) + EPSILON for d in ds):
                after_ack.append(message)
            ordered = sorted(ds, key=lambda d: (d.lease.deliveries, d.claim.sent))
            for before, after in itertools.pairwise(ordered):
                answered = after.claim.done
                if after.lease.deliveries == before.lease.deliveries or (
                    answered is not None
                    and answered < before.claim.sent + group.lease_seconds - EPSILON
                ):
                    overlapping.append(message)
                    break
        for receipt in accepted:
            mine = by_receipt.get(receipt)
            if mine is None:
                continue
            for other in deliveries[mine.lease.message_id]:
                answered = other.claim.done
                if (
                    other.lease.deliveries > mine.lease.deliveries
                    and answered is not None
                    and answered < first_sent[receipt] - EPSILON
                ):
                    after_relet.append(mine.lease.message_id)
                    break
        self.row(
            section,
            "redelivered after an accepted ack",
            len(after_ack),
            MUST_BE_ZERO,
            [(set(), {m}) for m in after_ack],
        )
        self.row(
            section,
            "leased to two consumers at once",
            len(overlapping),
            MUST_BE_ZERO,
            [(set(), {m}) for m in overlapping],
        )
        self.row(
            section,
            "acks accepted after the message was leased again",
            len(after_relet),
            MUST_BE_ZERO,
            [(set(), {m}) for m in after_relet],
        )

    def state(self, section: str, group: GroupSpec, delivered: set[str]) -> None:
        state = self.states.get(group.name, {})
        partitions = state.get("partitions", [])
        left = sum(int(p.get("pending", 0)) + int(p.get("in_flight", 0)) for p in partitions)
        self.row(
            section, "left pending or in flight after the drain (group state)", left, MUST_BE_ZERO
        )
        counted = int(state.get("acknowledged", -1))
        stored = len(self.stored_ids)
        check = "acknowledged counter minus messages stored"
        # The counter says only how many; the stored messages no answered claim handed
        # out are where one counted twice or never hides (their stories are told).
        unseen = sorted(self.stored_ids - delivered)
        self.row(
            section, check, abs(counted - stored), MUST_BE_ZERO, [(set(), {m}) for m in unseen]
        )
        if counted != stored:
            self.verdict.details[f"{section}: {check}"] = [
                f"the group's acknowledged counter is {counted}, the range read found {stored} "
                f"messages ({counted - stored:+d}); {len(unseen)} stored message(s) no answered "
                "claim handed out, the first ones below"
            ]

    # -- the answers themselves ------------------------------------------------------

    def answers_allowed(self) -> None:
        odd: list[tuple[set[str], set[str]]] = []
        lines: list[str] = []

        def report(kind: str, e: Post | Claim | Ack, keys: set[str], messages: set[str]) -> None:
            group = "" if isinstance(e, Post) else f" {e.group}"
            lines.append(
                f"{e.sent:8.3f}s-{e.done or 0:8.3f}s  {e.actor:<14} {kind}{group} -> "
                f"{e.status} {e.error[:200]}"
            )
            odd.append((keys, messages))

        for post in self.history.posts:
            if post.status not in (None, 201, 503) or (
                post.status == 201 and len(post.answers) != len(post.keys)
            ):
                report(f"POST keys {','.join(post.keys)}", post, set(post.keys), set())
        for claim in self.history.claims:
            if claim.status not in (None, 200, 503) or claim.error.startswith("malformed"):
                report("claim", claim, set(), {lease.message_id for lease in claim.leases})
        for ack in self.history.acks:
            if ack.status is None or ack.status == 503:
                continue
            sent, accepted, lost = set(ack.receipts), set(ack.accepted), set(ack.lost)
            if (
                ack.status not in (200, 409)
                or accepted | lost != sent
                or accepted & lost
                or (ack.status == 200) != (not lost)
            ):
                messages = {self.message_of.get(r, "") for r in ack.receipts} - {""}
                report(f"ack of {len(ack.receipts)} receipt(s)", ack, set(), messages)
        check = "unexpected statuses or bodies"
        self.row("answers", check, len(lines), MUST_BE_ZERO, odd)
        if lines:  # in the order sent (each line begins with its time)
            self.verdict.details[f"answers: {check}"] = sorted(lines, key=lambda t: float(t[:8]))


def check(
    history: History,
    stored: list[Stored],
    states: dict[str, dict[str, Any]],
    groups: list[GroupSpec],
) -> Verdict:
    return Checker(history, stored, states, groups).run()
