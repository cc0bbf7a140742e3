// trading-bot dashboard: live refresh of the page's live region, the kill-switch
// controls, and the events live tail. The pages work without this file.
"use strict";
(function () {
  const POLL_MS = 1500;
  const TAIL_MAX_ROWS = 200;
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const liveStatus = document.getElementById("live-status");

  function say(text) {
    if (liveStatus) liveStatus.textContent = text;
  }

  function clock() {
    return new Date().toISOString().slice(11, 19) + " UTC";
  }

  // Live region: ask this same URL for its fragment and swap it in.
  const live = document.querySelector("[data-live]");
  let inFlight = false;
  async function refresh() {
    if (!live || inFlight || document.hidden) return;
    // Keyboard users keep their place: no swap while focus is inside the live region.
    if (live.contains(document.activeElement) && document.activeElement !== live) {
      say("Live updates wait while you are on a link in the page.");
      return;
    }
    inFlight = true;
    try {
      const response = await fetch(location.href, {
        headers: { "X-Dashboard-Fragment": "1" }, credentials: "same-origin", cache: "no-store",
      });
      if (response.redirected || response.status === 401) {
        say("Session ended: reload the page to log in again.");
        return;
      }
      if (!response.ok) {
        say("✖ Update failed (HTTP " + response.status + ") at " + clock() + "; retrying.");
        return;
      }
      live.innerHTML = await response.text();
      say("Live: updated " + clock());
    } catch (error) {
      say("✖ Connection to the bot lost at " + clock() + "; retrying.");
    } finally {
      inFlight = false;
    }
  }
  if (live) {
    say("Live: updating every " + POLL_MS / 1000 + " s");
    setInterval(refresh, POLL_MS);
    document.addEventListener("visibilitychange", refresh);
  }

  // Trading controls (pause, resume, cancel-all, flatten): confirm, then POST JSON with
  // the session's CSRF token.
  const result = document.getElementById("control-result");
  for (const form of document.querySelectorAll("form[data-action]")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!window.confirm(form.dataset.confirm)) return;
      const reason = form.querySelector("input[name=reason]").value.trim();
      const button = form.querySelector("button");
      button.disabled = true;
      try {
        const response = await fetch(form.dataset.action, {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
          body: JSON.stringify(reason ? { reason } : {}),
        });
        const body = await response.json().catch(() => ({}));
        if (response.ok && Array.isArray(body.summary)) {
          // cancel-all / flatten: what was cancelled and sent, as the shell prints it.
          result.textContent = "✔ " + body.summary.join(" · ");
          form.reset();
        } else if (response.ok) {
          result.textContent = "✔ Done: trading is " + body.kill_switch.mode +
            (body.changed === false ? " (it already was)." : ".");
          form.reset();
        } else {
          result.textContent = "✖ Refused (HTTP " + response.status + "): " + (body.detail || "");
        }
      } catch (error) {
        result.textContent = "✖ The bot did not answer; check its state before retrying.";
      } finally {
        button.disabled = false;
        refresh();
      }
    });
  }

  // Events live tail over the WebSocket, with reconnects.
  const tail = document.getElementById("live-tail");
  const rows = document.getElementById("live-rows");
  const tailStatus = document.getElementById("tail-status");
  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    return td;
  }
  function addEvent(event) {
    const tr = document.createElement("tr");
    tr.className = "new";
    const time = document.createElement("time");
    time.dateTime = event.timestamp;
    time.textContent = event.timestamp.slice(0, 19).replace("T", " ");
    const when = document.createElement("td");
    when.append(time);
    const severity = cell(event.severity);
    severity.className = "sev-" + event.severity;
    tr.append(when, cell(event.type), severity, cell(event.message), cell(event.source),
      cell(event.strategy_id));
    rows.prepend(tr);
    while (rows.rows.length > TAIL_MAX_ROWS) rows.deleteRow(-1);
  }
  function connect(delayMs) {
    const url = new URL(tail.dataset.stream, location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(url);
    socket.onopen = () => {
      delayMs = 1000;
      tailStatus.textContent = "● Live: new events appear at the top.";
    };
    socket.onmessage = (message) => {
      try { addEvent(JSON.parse(message.data)); } catch (error) { /* not an event */ }
    };
    socket.onclose = (close) => {
      const why = close.reason ? " (" + close.reason + ")" : "";
      tailStatus.textContent = "✖ Live tail disconnected" + why + "; reconnecting.";
      setTimeout(() => connect(Math.min(delayMs * 2, 15000)), delayMs);
    };
  }
  if (tail && rows && tailStatus) connect(1000);
})();
