"""Queuey's hot paths on several ASGI frameworks, measured side by side (issue 8).

The same Queuey is served for the two endpoints that carry almost all
traffic, POST and GET ``/v1/{app}/{queue}``, with three HTTP layers:

- ``queuey``: the real app, ``queuey.api.app.create_app`` (its own ASGI layer);
- ``starlette``: Starlette in its place (``starlette_app.py``);
- ``falcon``: Falcon's ASGI app in its place (``falcon_app.py``);
- ``bare``: a raw ASGI handler with a constant answer, the ceiling (``bare.py``).

The adapters take Queuey's endpoints, observer and lifespan from
``create_app`` (``adapt.py``), so only the HTTP layer differs;
tests/test_bench_frameworks.py checks that they answer exactly as Queuey
does. ``python -m bench.frameworks`` (``run.py``) serves each on granian
pinned to one core, drives it with wrk from another, and writes the table
into docs/architecture.md.
"""
