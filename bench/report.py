"""BENCHMARKS.md: collected while the bench runs, rendered at the end."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bench.profiling import Profile
from queuey.storage import window as w


@dataclass(frozen=True)
class Row:
    """One figure: the medians of a scenario's runs."""

    title: str
    rps: float
    messages: float | None
    p50: float
    p99: float
    server_cores: float
    other_cores: float
    errors: int
    runs: tuple[float, ...]


@dataclass(frozen=True)
class GroupState:
    """What some consumer groups of one queue hold in the SQLite file."""

    label: str
    groups: int
    """Rows in ``groups``."""
    windows: int
    """Rows in ``group_windows`` (one per group and partition, once claimed)."""
    window_bytes: int
    """The windows' length, summed."""
    records: int
    """Messages after a window's start that were leased: leased, released or done."""
    recent: int
    """Receipts accepted behind a window's start, remembered so that a retried ack succeeds."""
    file_bytes: int | None
    """How much the database grew when the groups were created, if measured."""


@dataclass(frozen=True)
class PeerRow:
    """One figure of the peer table (``BENCH_PEERS=1``): a system's request and durability."""

    system: str
    request: str
    durability: str
    figure: Row
    versus: float | None
    """Queuey's figure for the closest request divided by this one (messages/s, this run);
    None for Queuey's own rows."""


@dataclass(frozen=True)
class Target:
    name: str
    goal: str
    figure: str
    met: bool
    scenario: str | None
    """The scenario profiled when the target is missed."""
    bound: str
    """What bounds a missed target (or why it was not measured)."""
    measured: bool = True

    @property
    def verdict(self) -> str:
        if not self.measured:
            return "not measured"
        return "met" if self.met else "**missed**"


@dataclass
class Report:
    """Everything BENCHMARKS.md says, in the order it was learnt."""

    quick: bool
    options: dict[str, Any] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    sections: list[tuple[str, list[str]]] = field(default_factory=list)
    """(title, Markdown lines) of the figure sections, in the order measured."""
    servers: list[tuple[str, str]] = field(default_factory=list)
    commands: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    memories: list[tuple[str, float, float]] = field(default_factory=list)
    group_rows: list[Row] = field(default_factory=list)
    group_states: list[GroupState] = field(default_factory=list)
    profiles: dict[str, tuple[str, Profile]] = field(default_factory=dict)
    peer_rows: list[PeerRow] = field(default_factory=list)
    peer_intro: str = ""
    peer_remarks: list[str] = field(default_factory=list)
    waited: float = 0.0
    load_before: float = 0.0
    load_after: float = 0.0
    fsync_ms: float = 0.0
    seconds: float = 0.0
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))

    # -- collecting ------------------------------------------------------------

    def settings(self, **options: Any) -> None:
        self.options.update(options)

    def background(self, waited: float, cores: float) -> None:
        self.waited, self.load_before = waited, cores

    def fsync(self, ms: float) -> None:
        self.fsync_ms = ms

    def server(self, name: str, command: str) -> None:
        self.servers.append((name, command))

    def command(self, title: str, command: str) -> None:
        self.commands.append((title, command))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def memory(self, label: str, rss_mb: float, peak_mb: float) -> None:
        self.memories.append((label, rss_mb, peak_mb))

    def figures(self, title: str, rows: list[Row], after: list[str] | None = None) -> None:
        """A table of figures (requests/s), then ``after``: more Markdown lines of the section."""
        self.sections.append((title, [*figure_table(rows, "requests/s"), *(after or [])]))

    def section(self, title: str, lines: list[str]) -> None:
        """A section of figures rendered elsewhere (Markdown lines)."""
        self.sections.append((title, lines))

    def groups(self, rows: list[Row], states: list[GroupState]) -> None:
        """The consumer-group figures (runs in messages/s) and what the groups hold."""
        self.group_rows += rows
        self.group_states += states

    def peers(self, rows: list[PeerRow], intro: str, remarks: list[str]) -> None:
        """The peer table, how it was measured, and what to say under it."""
        self.peer_rows += rows
        self.peer_intro = intro
        self.peer_remarks += remarks

    def target(
        self,
        name: str,
        goal: str,
        figure: str,
        met: bool,
        scenario: str | None,
        bound: str,
        measured: bool = True,
    ) -> None:
        self.targets.append(Target(name, goal, figure, met, scenario, bound, measured))

    def missed_scenarios(self) -> list[str]:
        """Scenarios behind missed targets, each once."""
        found = [t.scenario for t in self.targets if not t.met and t.measured and t.scenario]
        return list(dict.fromkeys(found))

    def profile(self, key: str, title: str, profile: Profile) -> None:
        self.profiles[key] = (title, profile)

    def elapsed(self, seconds: float, load_after: float) -> None:
        self.seconds, self.load_after = seconds, load_after

    # -- rendering -------------------------------------------------------------

    def render(self, machine: list[str], versions: list[tuple[str, str]]) -> str:
        o = self.options
        pinned = (
            f"the server on core {o['server_cores']} (`taskset -c {o['server_cores']}`),"
            f" wrk on core {o['loadgen_cores']}"
            if o.get("server_cores") is not None
            else "not pinned (taskset or a second core is missing)"
        )
        out = [
            "# Benchmarks",
            "",
            f"Written by `make bench` (bench/run.py) on {self.started}; do not edit by hand,"
            " run it again.",
        ]
        if self.quick:
            out += ["", "**QUICK run (`BENCH_QUICK=1`): a smoke test, not figures to quote.**"]
        out += [
            "",
            f"Each figure is the median of {o['runs']} wrk run(s) of {o['seconds']:g} s"
            f" ({o['connections']} keep-alive connections, one wrk thread) after a"
            f" {o['warmup']:g} s warm-up run; runs of figures compared with each other are"
            f" interleaved. Servers run one process (one granian worker), SQLite storage;"
            f" {pinned} — except where a section says otherwise (two workers, nothing pinned;"
            " one Cassandra node). Targets are issue 13's (with issue 9's on consumer groups),"
            " as ratios within this run where they compare; a missed target says what bounds it"
            " and, when py-spy is installed, its scenario is profiled (Profiles of missed"
            " targets).",
            "",
            "## Machine",
            "",
            *[f"- {line}" for line in machine],
            f"- Disk: {self.fsync_ms:.2f} ms median to write 4 KiB and fdatasync it"
            " (what a strong POST waits for, once per group commit)",
            f"- Other processes: {self.load_before:.2f} cores busy when measuring began"
            f" (after waiting {self.waited:.0f} s for quiet), {self.load_after:.2f} at the end;"
            " the `other` column shows the most they took during a figure's runs",
            "",
            "## Versions",
            "",
            *[f"- {name} {value}" for name, value in versions],
            "",
            "## Targets",
            "",
            "| target | goal | measured | | what bounds it |",
            "| --- | --- | --- | --- | --- |",
        ]
        for t in self.targets:
            out.append(f"| {t.name} | {t.goal} | {t.figure} | {t.verdict} | {t.bound} |")
        out += [
            "",
            "Where a request's time goes in Queuey's own code, and what was tried against each"
            " missed target and what it gave: [docs/performance.md](docs/performance.md).",
        ]
        for title, lines in self.sections:
            out += ["", f"## {title}", "", *lines]
        if self.group_rows or self.group_states:
            out += self._groups()
        if self.peer_rows:
            out += ["", *self.peer_table()]
        out += [
            "",
            "`server cores`: CPU the server's processes used (1.00 = its core saturated);"
            " `other cores`: CPU taken by processes that are neither the server nor wrk.",
            "",
            "## Memory",
            "",
            "Resident memory of the server, all its granian processes summed (VmRSS and peak"
            " VmHWM from /proc/PID/status), after its runs.",
            "",
            "| server | RSS MB | peak MB |",
            "| --- | ---: | ---: |",
            *[f"| {label} | {rss:,.0f} | {peak:,.0f} |" for label, rss, peak in self.memories],
        ]
        if self.profiles:
            out += self._profiles()
        out += [
            "",
            "## Notes",
            "",
            *[f"- {n}" for n in self.notes],
            "",
            "## Commands",
            "",
            f"From the repository's folder; the whole bench took {self.seconds / 60:.1f} min.",
            "",
            "```sh",
            *[f"# {name}\n{command}" for name, command in self.servers],
            "",
            *[f"# {title}\n{command}" for title, command in self.commands],
            "```",
            "",
        ]
        return "\n".join(out)

    def peer_table(self) -> list[str]:
        """The peers section: Queuey beside other systems, measured in the same rounds."""
        out = [
            "## Peers",
            "",
            self.peer_intro,
            "",
            "| system | request | durability | requests/s | messages/s | Queuey ÷ it | p50 ms"
            " | p99 ms | server cores | other cores | errors | runs (requests/s) |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for p in self.peer_rows:
            r = p.figure
            messages = f"{r.messages:,.0f}" if r.messages is not None else ""
            versus = f"{p.versus:.2f}" if p.versus is not None else ""
            runs = ", ".join(f"{v:,.0f}" for v in r.runs)
            out.append(
                f"| {p.system} | {p.request} | {p.durability} | {r.rps:,.0f} | {messages}"
                f" | {versus} | {r.p50:.2f} | {r.p99:.2f} | {r.server_cores:.2f}"
                f" | {r.other_cores:.2f} | {r.errors} | {runs} |"
            )
        if self.peer_remarks:
            out += ["", *[f"- {remark}" for remark in self.peer_remarks]]
        return out

    def _groups(self) -> list[str]:
        out = [
            "",
            "## Consumer groups",
            "",
            "Claims and acknowledgements share wrk's connections (bench/lua/group.lua): each"
            " claim's receipts are acknowledged by the next request sent. For them messages/s"
            " counts messages acknowledged, requests/s claims and acks together, and p50/p99"
            " time the claims alone; runs are in messages/s.",
            "",
            *figure_table(self.group_rows, "messages/s"),
        ]
        if self.group_states:
            out += [
                "",
                "What groups hold, read from the SQLite file with sqlite3 after the runs: rows,"
                " the windows' bytes (`sum(length(window))`), and in them the records of"
                " messages leased after each window's start and the receipts remembered behind"
                f" it (so that a retried acknowledgement succeeds, for {w.RECENT_MS // 60_000}"
                f" minutes, at most {w.RECENT_MAX:,} a window).",
                "",
                "| groups | rows in `groups` | rows in `group_windows` | window bytes | records"
                " | remembered receipts | file growth |",
                "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
            ]
            for g in self.group_states:
                grew = ""
                if g.file_bytes is not None:
                    grew = f"{g.file_bytes / 1e6:,.2f} MB"
                    if g.groups:
                        grew += f" ({g.file_bytes / g.groups:,.0f} bytes a group)"
                out.append(
                    f"| {g.label} | {g.groups:,} | {g.windows:,} | {g.window_bytes:,}"
                    f" | {g.records:,} | {g.recent:,} | {grew} |"
                )
        return out

    def _profiles(self) -> list[str]:
        out = [
            "",
            "## Profiles of missed targets",
            "",
            "py-spy samples of the server's Python threads under the same load (threads that"
            " wait — on a socket, a lock, the disk — are not sampled). Busy: share of the"
            " profile's time a thread was running Python. Self: share of running samples in"
            " the function itself, any code; total: share of running samples in Queuey's own"
            " functions and what they called.",
        ]
        for _key, (title, profile) in self.profiles.items():
            out += [
                "",
                f"### {title}",
                "",
                f"`{profile.command}` — {profile.samples:,} samples, {profile.inside_queuey:.0%}"
                " of them inside Queuey's code (the rest: the event loop, granian, and the"
                " threads of libraries, such as the Cassandra driver's).",
                "",
                "| thread | busy |",
                "| --- | ---: |",
                *[f"| `{name}` | {share:.0%} |" for name, share in profile.thread_busy()[:5]],
                "",
                "| self time | | total time, Queuey's code | |",
                "| --- | ---: | --- | ---: |",
            ]
            own = profile.top(profile.own, 12)
            total = profile.top(profile.total, 12)
            for (a, x), (b, y) in zip(own, total, strict=False):
                out.append(f"| `{a}` | {x:.1%} | `{b}` | {y:.1%} |")
        return out


def figure_table(rows: list[Row], runs_unit: str) -> list[str]:
    """A table of figures, one row a scenario."""
    out = [
        "| scenario | requests/s | messages/s | p50 ms | p99 ms | server cores"
        f" | other cores | errors | runs ({runs_unit}) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        messages = f"{r.messages:,.0f}" if r.messages is not None else ""
        runs = ", ".join(f"{v:,.0f}" for v in r.runs)
        out.append(
            f"| {r.title} | {r.rps:,.0f} | {messages} | {r.p50:.2f} | {r.p99:.2f}"
            f" | {r.server_cores:.2f} | {r.other_cores:.2f} | {r.errors} | {runs} |"
        )
    return out
