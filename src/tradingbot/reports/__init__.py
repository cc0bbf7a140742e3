"""Reports from durable data: the daily summary (:mod:`.daily`) and P&L over a period
(:mod:`.pnl`), from our books rebuilt from the recorded fills (:mod:`.books`).

Nothing is imported here: ``trading-bot``'s argument parser imports :mod:`.cli`, and
``trading-bot shell`` (which may run as another user) must not load the storage stack.
"""

BY_CHOICES = ("day", "week", "month")  # the groupings of the P&L report
