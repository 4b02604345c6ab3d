"""The backend contract suite: what every agentkeep backend must do, run against each.

The test bodies use only the public surface (``agentkeep.open``, ``Store`` methods, the CLI
with ``--store``) in this process and in child processes, and reach a backend's storage
through :mod:`.backends` alone, so a new backend is "write its adapter and pass this suite"
(litestream's pattern: every backend passes one contract suite). Every test name carries
the backend's id (``test_…[sqlite]``).

=========================  ===========================================================
test_writers.py            concurrent writer processes lose no acknowledged write and
                           never see Busy; a writer killed inside a transaction leaves
                           none of it and no lock behind
test_events.py             one total order; follow() and events(after=) see every event
                           once, in order, while processes write; a cursor resumes
test_follow_watcher.py     the backend's watcher reports every other connection's and
                           process's commit, and nothing while the store is idle
test_idempotency.py        retries return the first record and write nothing; a key
                           belongs to one noun; racing retries create one record
test_claims.py             racing claimers: one winner, Conflict for the rest, one event
test_schema_versions.py    a new store is current; an older one migrates on open; a newer
                           one is refused or read-only and never changed
test_search_semantics.py   words, phrases, prefixes, kinds, ranking, redacted secrets
test_maintenance.py        check, sizes, backup and restore, gc giving space back
=========================  ===========================================================

Adding a backend: implement :class:`.backends.Adapter` (``create``, ``vacant``,
``create_at_version``, ``set_schema_versions``, ``fingerprint``), register it in
``ADAPTERS`` and list its name in ``BACKENDS``. A backend that cannot run somewhere must
fail under ``AGENTKEEP_REQUIRE_ALL_TESTS=1`` rather than skip (``conftest.skip_or_fail``).
Child processes are ``worker.py`` (this suite's modes) and ``tests/helpers/writer.py``
(claim and stream modes); ``harness.py`` starts, waits on and reaps them.
"""
