// usage.js — the Usage & retention view: pins, and the background operations of
// /api/v1/operations (server/operations.py): the gc dry run, its apply once confirmed,
// backup, export (then a download link) and bundle import (the file is the request's
// body), each followed to its end with a progress bar. Mutations carry the dashboard's
// CSRF header; the token travels in the HttpOnly cookie. Text goes in with textContent.
"use strict";
(function () {
  var CSRF = { "X-Agentkeep-CSRF": "1" };
  var progress = document.getElementById("progress");
  var bar = document.getElementById("progress-bar");
  var barText = document.getElementById("progress-text");
  var failure = document.getElementById("ops-error");
  if (!progress) { return; }

  function bytes(value) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0;
    while (Math.abs(value) >= 1024 && i < units.length - 1) { value /= 1024; i += 1; }
    return (i ? value.toFixed(1) : String(Math.round(value))) + " " + units[i];
  }

  function request(method, url, body, type) {
    var headers = Object.assign({}, CSRF);
    if (body !== undefined) { headers["Content-Type"] = type || "application/json"; }
    return fetch(url, {
      method: method,
      headers: headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : (type ? body : JSON.stringify(body)),
    }).then(function (response) {
      return response.json().then(function (json) {
        if (!response.ok) { throw new Error(json.error || ("HTTP " + response.status)); }
        return json;
      });
    });
  }

  function showError(error) {
    failure.textContent = String(error.message || error);
    failure.hidden = false;
  }

  function showProgress(op) {
    progress.hidden = false;
    bar.max = Math.max(1, op.total);
    bar.value = Math.min(op.done, bar.max);
    barText.textContent = op.kind + ": " + op.phase + " " + op.done + "/" + op.total;
    progress.dataset.status = op.status;
  }

  // Follow an operation until it is done or failed; resolves with its final state.
  function watch(op) {
    failure.hidden = true;
    showProgress(op);
    return new Promise(function (resolve, reject) {
      function poll() {
        request("GET", "/api/v1/operations/" + encodeURIComponent(op.id)).then(function (now) {
          showProgress(now);
          if (now.status === "running") { window.setTimeout(poll, 200); return; }
          if (now.status === "failed") { reject(new Error(now.error ? now.error.error : "failed")); return; }
          resolve(now);
        }, reject);
      }
      poll();
    });
  }

  function start(body) { return request("POST", "/api/v1/operations", body).then(watch); }

  function busy(button, promise) {
    button.disabled = true;
    return promise.catch(showError).finally(function () { button.disabled = false; });
  }

  // -- gc ------------------------------------------------------------------------------
  var dryRun = document.getElementById("gc-dry-run");
  var planBox = document.getElementById("gc-plan");
  var confirm = document.getElementById("gc-confirm");
  var apply = document.getElementById("gc-apply");
  var gcResult = document.getElementById("gc-result");
  var planId = null;
  var planItems = 0;

  function cell(row, text) {
    var td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    row.appendChild(td);
  }

  function showPlan(op) {
    var plan = op.result;
    planId = op.id;
    planItems = plan.items_total;
    document.getElementById("gc-summary").textContent = plan.items_total === 0
      ? "Nothing would be deleted now."
      : "Would delete " + plan.streams + " streams, " + plan.artifacts + " artifacts and " +
        plan.objects + " objects: " + bytes(plan.bytes) + ".";
    var body = document.querySelector("#gc-items tbody");
    body.textContent = "";
    plan.items.forEach(function (item) {
      var row = document.createElement("tr");
      [item.what, item.id, item.kind, item.session_id, bytes(item.bytes), item.reason].forEach(function (v) { cell(row, v); });
      body.appendChild(row);
    });
    confirm.checked = false;
    apply.disabled = true;
    apply.textContent = "Apply (delete " + planItems + " items)";
    planBox.hidden = false;
    planBox.dataset.plan = op.id;
  }

  dryRun.addEventListener("click", function () {
    gcResult.hidden = true;
    busy(dryRun, start({ kind: "gc" }).then(showPlan));
  });
  confirm.addEventListener("change", function () { apply.disabled = !(confirm.checked && planItems > 0); });
  apply.addEventListener("click", function () {
    if (!planId || !confirm.checked) { return; }
    busy(apply, start({ kind: "gc", apply: true, plan: planId }).then(function (op) {
      var r = op.result;
      planBox.hidden = true;
      planId = null;
      gcResult.textContent = "Deleted " + r.files_deleted + " files; reclaimed " + bytes(r.bytes_reclaimed) + ". Reload to see the new usage.";
      gcResult.hidden = false;
    }));
  });

  // -- backup, export, import ------------------------------------------------------------
  var backup = document.getElementById("backup");
  backup.addEventListener("click", function () {
    busy(backup, start({ kind: "backup" }).then(function (op) {
      barText.textContent = "backed up " + op.result.files + " files (" + bytes(op.result.bytes) + ")";
    }));
  });

  var exporter = document.getElementById("export");
  var download = document.getElementById("export-download");
  exporter.addEventListener("click", function () {
    download.hidden = true;
    busy(exporter, start({ kind: "export", all: true }).then(function (op) {
      download.href = op.download;
      download.textContent = "Download the bundle (" + bytes(op.result.bytes) + ")";
      download.hidden = false;
    }));
  });

  var importForm = document.getElementById("import-form");
  var importFile = document.getElementById("import-file");
  importForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var file = importFile.files && importFile.files[0];
    if (!file) { showError("choose a bundle first"); return; }
    var button = importForm.querySelector("button");
    busy(button, request("POST", "/api/v1/operations/import", file, "application/x-tar").then(watch).then(function (op) {
      barText.textContent = "imported: " + op.result.outcome;
    }));
  });

  // -- pins --------------------------------------------------------------------------------
  document.querySelectorAll("button.pin[data-session]").forEach(function (button) {
    button.addEventListener("click", function () {
      var pinned = button.dataset.pinned !== "true";
      busy(button, request("POST", "/api/v1/sessions/" + encodeURIComponent(button.dataset.session) + "/pin", { pinned: pinned }).then(function (out) {
        var now = out.pin.pinned;
        button.dataset.pinned = now ? "true" : "false";
        button.setAttribute("aria-pressed", button.dataset.pinned);
        button.textContent = now ? "Unpin" : "Pin";
      }));
    });
  });
})();
