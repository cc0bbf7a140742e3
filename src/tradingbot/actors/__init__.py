"""The broker actor's old home, until it moves into :mod:`tradingbot.broker`.

Every other actor lives next to its domain: the event logger in ``events/``, the
notifier in ``notify/``, the health actor in ``health/``, the reconciler and the
heartbeat in ``recovery/``.
"""
