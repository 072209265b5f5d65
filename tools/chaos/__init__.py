"""Faults injected into a running mesh under steady load, with the numbers they produce.

  probe.py      what a scenario reads and does to the mesh: supervisord pids, kill /
                restart, each caller's Envoy view of an instance, payment's fault knob,
                and ``restore`` (the mesh back to healthy); Consul health and sidecar
                counters come from harness/mesh.py, as for the mesh tests
  shop.py       customers and purchases for the saga and event scenarios, and the audit
                that compares orders, payments, notifications and analytics
  scenarios.py  one function per fault: inject it under load (harness/load.py), restore the
                mesh, return the numbers; shared by tests/chaos (which assert them) and
                the demo (which narrates them)
  demo.py       `make demo`: every scenario against `make up`'s mesh, in plain words
"""
