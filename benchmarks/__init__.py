"""Benchmarks and peers: what measures EdgeScribe, apart from what it is.

- ``offline``: `edgescribe bench`, speed, memory and model size in process (``--peers`` adds the peers);
- ``service``: `edgescribe bench-service`, streaming latency and load through a real server on loopback
  (and the helpers that start and stop one, which the service tests use too);
- ``engines``: `edgescribe bench-engines`, ONNX Runtime against torch: start-up, memory, real-time factor;
- ``peers``: PocketSphinx, Whisper tiny.en and Whisper base behind one interface (the `peers` extra),
  scored the way ``../shared/EVAL.md`` describes, for those benchmarks and ``scripts/compare_peers.py``.

None of it is imported by the recognition library (``model``) or the service (``service``).
"""
