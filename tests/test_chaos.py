"""The chaos run (``python -m chaos``): a bounded SQLite run, and its checker on made-up histories.

The bounded run SIGKILLs ``queuey serve`` once mid-run and asserts the run's
verdict: every violation count of its table is 0. The three-node Cassandra
variant replaces the suite's single node and runs in ``make chaos`` only.
The checker tests feed it small histories with one fault planted each and
assert that exactly the right check catches it: a checker that cannot fail
proves nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chaos.checker import Verdict, check
from chaos.consumers import GroupSpec
from chaos.history import Ack, Answer, Claim, History, Lease, Post, Stored
from chaos.report import stories, table
from tests.conftest import ROOT

LEASE = 2
GROUPS = [
    GroupSpec("amo", "at_most_once", LEASE),
    GroupSpec("alo", "at_least_once", LEASE),
    GroupSpec("eo", "exactly_once", LEASE),
]


@pytest.mark.slow
def test_bounded_sqlite_run_with_a_server_sigkill_violates_nothing(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "chaos", "--backend", "sqlite", "--seconds", "20"]
    command += ["--seed", "7", "--kills", "1", "--report", str(report)]
    result = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert report.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    verdict = json.loads(report.read_text())
    violated = [r for r in verdict["rows"] if r["violated"]]
    assert violated == [], result.stdout
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert len(verdict["faults"]) == 1 and "SIGKILL" in verdict["faults"][0]
    assert "server: up again (run 2)" in result.stdout
    # The run did exercise what it checks.
    counts = {(r["section"], r["check"].strip()): r["count"] for r in verdict["rows"]}
    assert counts[("publishing", "acknowledged (answered 201)")] > 100
    assert counts[("publishing", "re-sending keys already answered 201, on purpose")] > 0
    assert counts[("alo (at_least_once)", "redeliveries")] > 0
    assert counts[("eo (exactly_once)", "receipts refused (409 LeaseLost)")] > 0


# -- the checker on made-up histories ------------------------------------------------


class Scenario:
    """One message ``m1`` (key ``k1``), posted, claimed and acknowledged once by every group."""

    def __init__(self) -> None:
        self.history = History()
        self.history.posts.append(
            Post("p1", 0.0, ["k1"], done=0.1, status=201, answers=[Answer("m1", "1.0000000", 1)])
        )
        self.stored = [Stored("m1", 1, "k1")]
        self.states: dict[str, dict[str, Any]] = {}
        for group in GROUPS:
            self.claim(group.name, 1.0, "m1", f"{group.name}-r1", 1)
            self.ack(group.name, 1.2, [f"{group.name}-r1"], accepted=[f"{group.name}-r1"])
            self.states[group.name] = {
                "partitions": [{"pending": 0, "in_flight": 0}],
                "acknowledged": 1,
            }

    def claim(self, group: str, sent: float, message: str, receipt: str, deliveries: int) -> None:
        lease = Lease(message, 1, receipt, deliveries, "k1")
        self.history.claims.append(Claim("c", group, sent, sent + 0.1, 200, [lease]))

    def ack(
        self,
        group: str,
        sent: float,
        receipts: list[str],
        accepted: list[str] | None = None,
        lost: list[str] | None = None,
        status: int | None = None,
    ) -> None:
        accepted, lost = accepted or [], lost or []
        if status is None and (accepted or lost):
            status = 409 if lost else 200
        done = sent + 0.1
        self.history.acks.append(Ack("c", group, sent, receipts, done, status, accepted, lost))

    def verdict(self) -> Verdict:
        return check(self.history, self.stored, self.states, GROUPS)


def violated(verdict: Verdict) -> set[str]:
    return {f"{r.section}: {r.check}" for r in verdict.rows if r.violated}


def test_the_plain_scenario_passes() -> None:
    verdict = Scenario().verdict()
    assert verdict.ok, table(verdict, [])


def missing(s: Scenario) -> None:
    s.stored = []
    for state in s.states.values():
        state["acknowledged"] = 0


def two_answers(s: Scenario) -> None:
    s.history.posts.append(
        Post("p1", 0.2, ["k1"], done=0.3, status=201, answers=[Answer("m1", "1.0000000", 2)])
    )


def stored_twice(s: Scenario) -> None:
    s.stored.append(Stored("m2", 1, "k1"))
    s.history.posts.append(
        Post("p1", 0.2, ["k1"], done=0.3, status=201, answers=[Answer("m1", "1.0000000", 1)])
    )
    for name in ("alo", "eo"):  # m2 consumed too, so that only the duplicate is wrong
        s.claim(name, 2.0, "m2", f"{name}-m2", 1)
        s.ack(name, 2.2, [f"{name}-m2"], accepted=[f"{name}-m2"])
    s.claim("amo", 2.0, "m2", "amo-m2", 1)
    for state in s.states.values():
        state["acknowledged"] = 2


def amo_twice(s: Scenario) -> None:
    s.claim("amo", 5.0, "m1", "amo-r2", 2)


def amo_refused(s: Scenario) -> None:
    s.ack("amo", 1.5, ["amo-r1"], lost=["amo-r1"])


def eo_two_acks(s: Scenario) -> None:
    s.history.acks = [a for a in s.history.acks if a.group != "eo"]
    s.claim("eo", 4.0, "m1", "eo-r2", 2)
    s.ack("eo", 1.2, ["eo-r1"], accepted=["eo-r1"])
    s.ack("eo", 4.2, ["eo-r2"], accepted=["eo-r2"])


def eo_stale(s: Scenario) -> None:
    s.history.acks = [a for a in s.history.acks if a.group != "eo"]
    s.ack("eo", 3.5, ["eo-r1"], accepted=["eo-r1"])


def eo_never(s: Scenario) -> None:
    s.history.acks = [a for a in s.history.acks if a.group != "eo"]
    s.ack("eo", 3.5, ["eo-r1"], lost=["eo-r1"])


def alo_overlap(s: Scenario) -> None:
    s.history.acks = [a for a in s.history.acks if a.group != "alo"]
    s.claim("alo", 1.5, "m1", "alo-r2", 2)
    s.ack("alo", 1.7, ["alo-r2"], accepted=["alo-r2"])


def alo_after_relet(s: Scenario) -> None:
    s.history.acks = [a for a in s.history.acks if a.group != "alo"]
    s.claim("alo", 3.2, "m1", "alo-r2", 2)
    s.ack("alo", 3.5, ["alo-r1"], accepted=["alo-r1"])
    s.ack("alo", 3.6, ["alo-r2"], lost=["alo-r2"])


def alo_redelivered(s: Scenario) -> None:
    s.claim("alo", 4.0, "m1", "alo-r2", 2)
    s.ack("alo", 4.2, ["alo-r2"], accepted=["alo-r2"])


def unknown(s: Scenario) -> None:
    s.history.acks = [a for a in s.history.acks if a.group != "eo"]
    s.ack("eo", 1.2, ["eo-r1"])
    s.claim("eo", 4.0, "m1", "eo-r2", 2)
    s.ack("eo", 4.2, ["eo-r2"], accepted=["eo-r2"])


def bad_answer(s: Scenario) -> None:
    s.ack("alo", 1.4, ["alo-r1"], accepted=["alo-r1"], lost=["alo-r1"], status=200)


def left_pending(s: Scenario) -> None:
    s.states["alo"]["partitions"][0]["pending"] = 1


def amo_skipped(s: Scenario) -> None:
    """m2 is stored and consumed by alo and eo; amo never leased it (counter one short)."""
    s.stored.append(Stored("m2", 1, "k2"))
    s.history.posts.append(
        Post("p1", 0.2, ["k2"], done=0.3, status=201, answers=[Answer("m2", "1.0000001", 1)])
    )
    for name in ("alo", "eo"):
        s.claim(name, 2.0, "m2", f"{name}-m2", 1)
        s.ack(name, 2.2, [f"{name}-m2"], accepted=[f"{name}-m2"])
        s.states[name]["acknowledged"] = 2


@pytest.mark.parametrize(
    ("plant", "caught"),
    [
        (missing, {
            "publishing: acknowledged posts missing",
            "alo (at_least_once): deliveries of messages not in the queue",
            "amo (at_most_once): deliveries of messages not in the queue",
            "eo (exactly_once): deliveries of messages not in the queue",
        }),
        (two_answers, {"publishing: keys answered 201 with different messages"}),
        (stored_twice, {"publishing: duplicates stored (one key, several messages)"}),
        (amo_twice, {"amo (at_most_once): messages delivered more than once (≤ 1 each)"}),
        (amo_refused, {"amo (at_most_once): acks refused (at_most_once accepts every ack)"}),
        (eo_two_acks, {
            "eo (exactly_once): messages with more than one accepted ack",
            "eo (exactly_once): redelivered after an accepted ack",
        }),
        (eo_stale, {"eo (exactly_once): acks accepted after their lease expired (must be 409)"}),
        (eo_never, {"eo (exactly_once): messages without an accepted ack (exactly 1 each)"}),
        (alo_overlap, {"alo (at_least_once): leased to two consumers at once"}),
        (alo_after_relet, {
            "alo (at_least_once): acks accepted after the message was leased again",
        }),
        (alo_redelivered, {"alo (at_least_once): redelivered after an accepted ack"}),
        (unknown, {"eo (exactly_once): acks whose outcome stayed unknown (cannot judge)"}),
        (bad_answer, {"answers: unexpected statuses or bodies"}),
        (left_pending, {
            "alo (at_least_once): left pending or in flight after the drain (group state)",
        }),
        (amo_skipped, {"amo (at_most_once): acknowledged counter minus messages stored"}),
    ],
)  # fmt: skip
def test_the_checker_catches_a_planted_violation(
    plant: Callable[[Scenario], None], caught: set[str]
) -> None:
    scenario = Scenario()
    plant(scenario)
    verdict = scenario.verdict()
    assert violated(verdict) == caught, table(verdict, [])
    assert not verdict.ok


def test_a_violation_has_a_story() -> None:
    scenario = Scenario()
    alo_after_relet(scenario)
    scenario.history.fault("server: SIGKILL (process group)")
    verdict = scenario.verdict()
    told = stories(verdict, scenario.history, scenario.stored)
    (lines,) = told.values()
    text = "\n".join(lines)
    assert "POST keys k1 -> 201 k1=m1 p1" in text
    # Receipts are numbered as handed out: amo-r1, alo-r1, eo-r1, alo-r2.
    assert "claim alo -> m1 deliveries=2 receipt R4" in text
    assert "ack alo [R2] -> 200 acknowledged=[R2] lost=[]" in text
    assert "----- server: SIGKILL" in text


def test_a_counter_off_says_by_how_much_and_tells_the_messages_never_handed_out() -> None:
    scenario = Scenario()
    amo_skipped(scenario)
    verdict = scenario.verdict()
    told = stories(verdict, scenario.history, scenario.stored)
    (lines,) = told.values()
    assert lines[0].startswith(
        "the group's acknowledged counter is 1, the range read found 2 messages (-1)"
    )
    text = "\n".join(lines)
    assert "messages ['m2']; in the final range read: ['m2']" in text
    assert "POST keys k2 -> 201 k2=m2" in text


def test_an_unexpected_answer_is_shown_itself() -> None:
    scenario = Scenario()
    scenario.ack("eo", 1.5, ["eo-r1"], status=500)
    scenario.history.acks[-1].error = '{"error_msg": {"QueueyError": "..."}}'
    verdict = scenario.verdict()
    (lines,) = stories(verdict, scenario.history, scenario.stored).values()
    assert "   1.500s-   1.600s  c              ack of 1 receipt(s) eo -> 500" in lines[0]
    assert "QueueyError" in lines[0]
