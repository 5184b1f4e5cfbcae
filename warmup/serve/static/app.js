// The dashboard's live updates: from the log (Server-Sent Events), never by polling the tables.
//
// Each page says where its rows end in the log (<body data-position=P>: the tables' checkpoint) and
// follows /api/events?follow=1&after=P: exactly the events its rows do not hold yet, each applied
// once (an event id seen twice is ignored). EventSource reconnects by itself with Last-Event-ID.
// Text from events is set with textContent, never as markup.
(function () {
  "use strict";
  window.warmupShown = window.warmupShown || {};
  const body = document.body;
  const page = body.dataset.page;
  const seen = new Set();
  const COUNT_OF = { COMPLETED: "completed", FAILED: "failed", CANCELLED: "cancelled", INTERRUPTED: "interrupted" };

  function follow(runId, handle, types) {
    let url = "/api/events?follow=1";
    if (types) url += "&types=" + types;  // a list page needs a few types: the stream skips the rest
    if (body.dataset.position) url += "&after=" + encodeURIComponent(body.dataset.position);
    if (runId) url += "&run=" + encodeURIComponent(runId);
    const source = new EventSource(url);
    const live = document.querySelector("nav.top .live");
    source.onopen = function () { if (live) live.hidden = false; };
    source.onerror = function () { if (live) live.hidden = true; };
    source.onmessage = function (message) {
      let event;
      try { event = JSON.parse(message.data); } catch (e) { return; }
      if (!event || typeof event !== "object") return;
      if (event.id) {
        if (seen.has(event.id)) return;
        if (seen.size > 10000) seen.clear();  // (the stream never repeats an event: this is a second guard)
        seen.add(event.id);
      }
      handle(event, Number(message.lastEventId));
      if (event.id) window.warmupShown[event.id] = Date.now();
    };
    return source;
  }

  function cssValue(text) {
    return window.CSS && CSS.escape ? CSS.escape(text) : String(text).replace(/["\\]/g, "\\$&");
  }

  function setStatus(el, status) {
    if (!el) return;
    el.textContent = status;
    el.className = el.className.replace(/\bst-\S+/g, "").trim() + " st-" + status;
  }

  function bump(scope, name, by) {
    const cell = scope && scope.querySelector('[data-count="' + name + '"]');
    if (cell) cell.textContent = String((parseInt(cell.textContent, 10) || 0) + (by || 1));
  }

  function count(scope, name) {
    const cell = scope && scope.querySelector('[data-count="' + name + '"]');
    return cell ? parseInt(cell.textContent, 10) || 0 : 0;
  }

  function runStatus(scope, event) {
    // as the projector decides it: INTERRUPTED if said, else COMPLETED when every account completed
    if (event.status === "INTERRUPTED") return "INTERRUPTED";
    return count(scope, "completed") === count(scope, "total") ? "COMPLETED" : "FAILED";
  }

  function when(ts) {
    return ts ? ts.slice(0, 23).replace("T", " ") + " UTC" : "";
  }

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function artifactUrl(path) {
    return "/artifacts/" + String(path).split("/").map(encodeURIComponent).join("/");
  }

  // -- Runs -----------------------------------------------------------------------------------
  function runsPage() {
    const table = document.querySelector("table.runs");
    if (!table) return;
    const tbody = table.tBodies[0];
    const wantStatus = table.dataset.filterStatus;
    const wantTask = table.dataset.filterTask;
    follow(null, function (event) {
      const row = event.run_id ? tbody.querySelector('tr[data-run="' + cssValue(event.run_id) + '"]') : null;
      if (event.type === "run_started") {
        if (row || table.dataset.live !== "1") return;
        if ((wantStatus && wantStatus !== "RUNNING") || (wantTask && wantTask !== event.task_id)) return;
        const tr = document.createElement("tr");
        tr.dataset.run = event.run_id;
        const first = document.createElement("td");
        const link = document.createElement("a");
        link.href = "/runs/" + encodeURIComponent(event.run_id);
        link.textContent = event.run_id;
        first.appendChild(link);
        tr.appendChild(first);
        cell(tr, event.task_id, "task");
        cell(tr, "RUNNING", "status st st-RUNNING");
        const total = cell(tr, String((event.accounts || []).length), "n");
        total.dataset.count = "total";
        for (const name of ["completed", "failed", "cancelled", "interrupted"]) cell(tr, "0", "n").dataset.count = name;
        cell(tr, when(event.ts), "when");
        cell(tr, "", "when finished");
        cell(tr, event.trigger || "cli");
        const empty = tbody.querySelector("tr.empty");
        if (empty) empty.remove();
        tbody.insertBefore(tr, tbody.firstChild);
      } else if (!row) {
        return;
      } else if (event.type === "account_finished" && !event.retrying && COUNT_OF[event.status]) {
        bump(row, COUNT_OF[event.status]);
      } else if (event.type === "run_finished") {
        setStatus(row.querySelector(".status"), runStatus(row, event));
        const finished = row.querySelector(".finished");
        if (finished) finished.textContent = when(event.ts);
      }
    }, "run_started,account_finished,run_finished");
  }

  // -- Tasks ----------------------------------------------------------------------------------
  function tasksPage() {
    follow(null, function (event) {
      if (event.type !== "run_started" && event.type !== "run_finished") return;
      const last = document.querySelectorAll("tr[data-task] .last-run");
      for (const td of last) {
        const tr = td.closest("tr[data-task]");
        const link = td.querySelector("a");
        if (event.type === "run_started" && tr.dataset.task === event.task_id) {
          td.textContent = "";
          const a = document.createElement("a");
          a.href = "/runs/" + encodeURIComponent(event.run_id);
          a.textContent = event.run_id;
          const status = document.createElement("span");
          status.className = "status st st-RUNNING";
          status.textContent = "RUNNING";
          td.append(a, " ", status);
        } else if (event.type === "run_finished" && link && link.textContent === event.run_id) {
          const status = td.querySelector(".status");
          if (status && event.status) setStatus(status, event.status);
        }
      }
    }, "run_started,run_finished");
  }

  // -- Run ------------------------------------------------------------------------------------
  function runPage() {
    const runId = body.dataset.run;
    const summary = document.querySelector("table.summary");
    const ticker = document.getElementById("ticker");
    const section = document.getElementById("timeline");
    let lastPosition = -1;
    let timer = null;
    let finished = RUN_DONE.has(body.dataset.runStatus);
    let tries = 0;

    function refreshTimeline() {
      timer = null;
      if (!section) return;
      fetch(section.dataset.src, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (text) {
          const tpl = document.createElement("template");
          tpl.innerHTML = text;
          const fragment = tpl.content.firstElementChild;
          if (!fragment) return;
          const h2 = section.querySelector("h2");
          section.replaceChildren(fragment);
          if (h2 && !fragment.querySelector("h2")) section.prepend(h2);
          const at = Number(fragment.dataset.position);
          if (finished && (!(at > lastPosition)) && tries < 5) {  // the projector lags a little
            tries += 1;
            schedule(500);
          }
        })
        .catch(function () {});
    }

    function schedule(ms) {
      if (timer === null) timer = setTimeout(refreshTimeline, ms);
    }

    function accountRow(id) {
      return id ? document.querySelector('tr[data-account="' + cssValue(id) + '"]') : null;
    }

    function tick(event) {
      if (!ticker) return;
      const li = document.createElement("li");
      let text = when(event.ts).slice(11) + " " + event.type;
      if (event.account_id) text += " " + event.account_id;
      if (event.type === "step_finished") text += " step " + (event.index + 1) + " " + (event.action || "") + (event.ok ? " ok" : " failed");
      if (event.status) text += " " + event.status;
      if (event.error) text += ": " + String(event.error).slice(0, 200);
      li.textContent = text;
      ticker.insertBefore(li, ticker.firstChild);
      while (ticker.children.length > 20) ticker.lastChild.remove();
    }

    schedule(0);
    follow(runId, function (event, position) {
      if (event.run_id !== runId) return;
      if (position > lastPosition) lastPosition = position;
      tick(event);
      const row = accountRow(event.account_id);
      if (event.type === "account_started" && row) {
        setStatus(row.querySelector(".status"), "RUNNING");
        const attempts = row.querySelector(".attempts");
        if (attempts && event.attempt > (parseInt(attempts.textContent, 10) || 0)) attempts.textContent = String(event.attempt);
      } else if (event.type === "step_finished" && row) {
        if (!event.ok) {
          const failed = row.querySelector(".steps-failed");
          failed.textContent = String((parseInt(failed.textContent, 10) || 0) + 1);
        } else if (!event.skipped) {
          const ok = row.querySelector(".steps-ok");
          ok.textContent = String((parseInt(ok.textContent, 10) || 0) + 1);
        }
      } else if (event.type === "artifact_saved" && row) {
        const box = row.querySelector(".artifacts");
        const a = document.createElement("a");
        a.href = artifactUrl(event.path);
        if (event.kind === "trace") {
          a.className = "trace";
          a.setAttribute("download", "");
          a.textContent = "trace" + (event.attempt ? " " + event.attempt : "");
          box.appendChild(a);
        } else if (event.kind === "failure" || event.kind === "screenshot") {
          a.className = "screenshot";
          a.title = event.kind + " " + event.path;
          const img = document.createElement("img");
          img.loading = "lazy";
          img.alt = event.kind + " of " + event.account_id;
          img.src = a.href;
          a.appendChild(img);
          box.appendChild(a);
        }
      } else if (event.type === "account_finished" && row) {
        const error = row.querySelector(".error-text");
        if (error) error.textContent = event.error || "";
        if (!event.retrying) {
          setStatus(row.querySelector(".status"), event.status);
          if (COUNT_OF[event.status]) bump(summary, COUNT_OF[event.status]);
        }
      } else if (event.type === "run_finished") {
        const status = runStatus(summary, event);
        setStatus(document.getElementById("run-status"), status);
        body.dataset.runStatus = status;
        const done = document.getElementById("run-finished");
        if (done) done.textContent = when(event.ts) + (event.reason ? " (" + event.reason + ")" : "");
        const form = document.querySelector("form.cancel");
        if (form) form.remove();
        finished = true;
        tries = 0;
        if (timer !== null) { clearTimeout(timer); timer = null; }
        schedule(300);
        return;
      }
      // a live timeline costs the server about 25 us per account to redraw: a big run's, less often
      schedule(1000 + 2 * count(summary, "total"));
    });
  }

  const RUN_DONE = new Set(["COMPLETED", "FAILED", "INTERRUPTED"]);

  // -- a run not in the tables yet -------------------------------------------------------------
  function startingPage() {
    const runId = body.dataset.run;
    let checking = false;
    let left = 100;  // about 30 s of asking, after an event of the run was seen
    function check() {
      if (checking || left <= 0) return;
      checking = true;
      left -= 1;
      fetch("/api/runs/" + encodeURIComponent(runId), { credentials: "same-origin", cache: "no-store" })
        .then(function (r) {
          if (r.ok) window.location.reload();
          else setTimeout(function () { checking = false; check(); }, 300);
        })
        .catch(function () { checking = false; });
    }
    follow(runId, function (event) { if (event.run_id === runId) check(); });
  }

  if (page === "runs") runsPage();
  else if (page === "tasks") tasksPage();
  else if (page === "run") runPage();
  else if (page === "starting") startingPage();
})();
