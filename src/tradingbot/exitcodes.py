"""Process exit codes of ``trading-bot``; operators and systemd units rely on them."""

OK = 0
FAILURE = 1  # a runtime failure: startup failed, port in use, database unreachable...
USAGE = 2  # bad command line or configuration (one line on stderr names the setting)
TREE_FAILED = 3  # the supervision tree gave up (root escalation or a fatal error)
SHUTDOWN_DEADLINE = 4  # an orderly shutdown did not finish within its hard deadline
ALREADY_RUNNING = 5  # run: another process holds the run lock of this database and account
WATCHDOG_DEAD = 6  # watchdog-check: heartbeat stale and no process holds the run lock
WATCHDOG_HUNG = 7  # watchdog-check: a process holds the run lock but its heartbeat is stale
UNCLEAN_STOP = 8  # run: stopped on request, but the clean stop could not be stored (database
#   unreachable until the shutdown deadline): the next start reports this run as a crash
