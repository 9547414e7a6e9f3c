"""The fault and fuzz harness: real server and worker processes, broken on purpose.

``parley bench chaos`` runs all of it (:mod:`parley.commands.bench_chaos`); the test
suite runs a fast subset (``tests/integration/test_chaos.py``).

- :mod:`parley.chaos.processes`: a server (optionally on a small tmpfs) and workers as
  processes that can be killed, stopped and restarted, with a probe of the server's
  tasks, threads, file descriptors and memory;
- :mod:`parley.chaos.probe`: the server entry point used by the harness (the real
  ``server.app``, plus the probe on SIGUSR1);
- :mod:`parley.chaos.client`: a Converse client that sends raw bytes and records what
  came back;
- :mod:`parley.chaos.fuzz`: Converse message streams from a fixed seed;
- :mod:`parley.chaos.faults`: each fault case, returning what it found;
- :mod:`parley.chaos.churn`: sessions ending in every way, and the leaks they leave;
- :mod:`parley.chaos.crash`: the server killed at random under the real edge agent.
"""
