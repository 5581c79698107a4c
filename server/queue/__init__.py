"""Background work: job rows in the database, dramatiq messages that point at them.

The database holds every job's state (``server.models.job``); a message only says "look at
job N now". Losing a message, a broker or a worker loses no work: the reconciler finds due
rows and sends them again, and claiming a row is atomic, so a duplicate message is a no-op.
A job's database effects commit in the same transaction that marks it done, so a job that
is redone after a crash never doubles them.
"""
