"""Peers in ``make bench`` (``BENCH_PEERS=1``): other message systems measured beside Queuey.

One module per peer (elasticmq, centrifugo, jetstream), each pinned to an
exact version, built into var/peers/ by :mod:`bench.peers.build` and started
as a :class:`bench.peers.server.PeerServer`; :mod:`bench.peers.measure`
measures them beside Queuey and fills the report's peer table.
``python -m bench.peers --quick`` does that alone, without the rest of the bench.
"""
