"""Line editing, history and tab completion for the interactive shell (stdlib ``readline``).

Used only when the shell reads a terminal. History is kept in ``TRADINGBOT_HOME`` (file
mode 0600, at most ``HISTORY_LINES`` lines) and shared by successive shell sessions; a
line containing a configured secret (the API token, a password) is never written to it.
Tab completes command names, and actor names from the live tree for the commands that
take one (their usage names ``ACTOR``) and job names for ``run JOB``; the lists come
from the running process (``help``, ``tree``, ``jobs``), the actors at most
``ACTORS_TTL_S`` old.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HISTORY_LINES = 1000
ACTORS_TTL_S = 1.0

Fetch = Callable[[str], Any]  # command name -> its JSON result (None when it failed)


class Completions:
    """Words that complete a line: commands first, then the command's arguments."""

    def __init__(self, fetch: Fetch, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._clock = clock
        self._usages: dict[str, str] | None = None
        self._actors: list[str] = []
        self._actors_at = -ACTORS_TTL_S

    def usages(self) -> dict[str, str]:
        if self._usages is None:
            rows = self._fetch("help") or []
            usages = {str(r["usage"]).split()[0]: str(r["usage"]) for r in rows if r.get("usage")}
            usages.setdefault("help", "help [COMMAND]")
            for local in ("quit", "exit"):
                usages.setdefault(local, local)
            self._usages = usages
        return self._usages

    def actors(self) -> list[str]:
        if self._clock() - self._actors_at >= ACTORS_TTL_S:
            tree = self._fetch("tree")
            self._actors = sorted(_walk(tree)) if isinstance(tree, dict) else []
            self._actors_at = self._clock()
        return self._actors

    def candidates(self, words_before: Sequence[str], prefix: str) -> list[str]:
        """Completions of ``prefix``, the word after ``words_before`` on the line."""
        if not words_before:
            return sorted(name for name in self.usages() if name.startswith(prefix))
        command = words_before[0]
        usage = self.usages().get(command, "").split()[1:]
        position = len(words_before) - 1
        expected = usage[position] if position < len(usage) else ""
        if command == "help" and position == 0:
            pool: list[str] = sorted(self.usages())
        elif command == "watch" and position == 0:
            pool = ["tree"]
        elif command == "events" and position == 0:
            pool = ["--follow"]
        elif "ACTOR" in expected:
            pool = self.actors()
        elif expected == "JOB":
            jobs = self._fetch("jobs")
            pool = sorted(str(j["job"]) for j in jobs or [] if isinstance(j, dict) and "job" in j)
        else:
            return []
        return [word for word in pool if word.startswith(prefix)]


def _walk(node: dict[str, Any]) -> list[str]:
    names = [str(node.get("id", ""))]
    for child in node.get("children", []):
        if isinstance(child, dict):
            names.extend(_walk(child))
    return [name for name in names if name]


class LineEditor:
    """``input()`` with readline's editing, a persistent history and completion."""

    def __init__(
        self, history_path: Path | None, secrets: Sequence[str], completions: Completions
    ) -> None:
        import readline  # here: only an interactive shell needs it

        self._readline = readline
        self._history_path = history_path
        self._secrets = tuple(s for s in secrets if s)
        self._completions = completions
        self._matches: list[str] = []
        readline.set_history_length(HISTORY_LINES)
        readline.set_completer_delims(" \t\n")
        readline.set_completer(self._complete)
        if "libedit" in (readline.__doc__ or ""):
            readline.parse_and_bind("bind ^I rl_complete")
        else:
            readline.parse_and_bind("tab: complete")
        if history_path is not None and history_path.is_file():
            with contextlib.suppress(OSError):
                readline.read_history_file(history_path)

    def read(self, prompt: str) -> str:
        """One line (raises EOFError on Ctrl-D, KeyboardInterrupt on Ctrl-C)."""
        line = input(prompt)
        if any(secret in line for secret in self._secrets):
            length = self._readline.get_current_history_length()
            if length:
                self._readline.remove_history_item(length - 1)
        return line

    def save(self) -> str | None:
        """Write the history file (mode 0600); an error message, or None."""
        path = self._history_path
        if path is None:
            return None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            os.chmod(path, 0o600)
            self._readline.write_history_file(path)
        except OSError as exc:
            return f"shell history not saved to {path}: {exc.strerror or exc}"
        return None

    def _complete(self, text: str, state: int) -> str | None:
        if state == 0:
            line = self._readline.get_line_buffer()
            words_before = line[: self._readline.get_begidx()].split()
            try:
                # readline (as Python builds it) appends nothing: the space is ours.
                self._matches = [w + " " for w in self._completions.candidates(words_before, text)]
            except Exception:  # noqa: BLE001 - a completion must never end the shell
                self._matches = []
        return self._matches[state] if state < len(self._matches) else None
