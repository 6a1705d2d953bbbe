"""Proof by fault injection: Queuey's guarantees checked against real crashes.

``python -m chaos --backend sqlite|cassandra-cluster --seconds N --seed S``
starts real ``queuey serve`` processes (and, for ``cassandra-cluster``, a
three-node Cassandra cluster), runs producers and consumers against one queue
over HTTP while it SIGKILLs and restarts the server (and a Cassandra node),
records every request and answer, drains the consumer groups once the faults
stop, and checks the history Jepsen-style: per message, per idempotency key,
per group. It prints the table and exits 1 on any violation.

Modules, in the order a run uses them:

- :mod:`.cli` — the command line; owns every process a run starts and stops them all;
- :mod:`.run` — one run: set up, load and faults, then drain and read (a watchdog beside);
- :mod:`.servers` — ``queuey serve`` processes, killed as a whole process group;
- :mod:`.backends` — SQLite file or a three-node Cassandra cluster, and its restoration;
- :mod:`.api` — the HTTP calls; a request without an answer raises ``NoAnswer``;
- :mod:`.history` — the events recorded in memory (and dumped as JSON lines);
- :mod:`.producers`, :mod:`.consumers` — the load, with its misbehaviour on purpose;
- :mod:`.faults` — the schedule of SIGKILLs and restarts;
- :mod:`.drain` — after the faults: settle unknown outcomes, empty every group, read the queue;
- :mod:`.checker` — the invariants; :mod:`.report` — the table and the stories of violations.
"""
