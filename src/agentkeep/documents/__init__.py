"""Documents as files: the file format (:mod:`.format`), process identity for locks and
leases (:mod:`.leases`), declared types and namespaces (:mod:`.schemas`). The service that
writes and indexes documents is :mod:`agentkeep.services.docs`."""
