// Live phase updates: one EventSource per page on /workloads/live (server-sent events the
// submission service sends as the workload view commits phase changes). Rows and the detail
// view are updated in place; summaries (overview, a workload's history) are re-read at most
// once a second through htmx.
(function () {
  const main = document.getElementById("content");
  if (!main || !main.dataset.live || !window.EventSource) return;
  const seen = {};
  let refreshTimer = null;

  function refreshSummaries() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(function () {
      refreshTimer = null;
      document.querySelectorAll("[data-refresh]").forEach(function (el) {
        if (!el.id || !window.htmx) return;
        htmx.ajax("GET", el.dataset.refresh, {target: "#" + el.id, select: "#" + el.id,
                                               swap: "outerHTML"});
      });
    }, 1000);
  }

  const source = new EventSource(main.dataset.live);
  // A change committed between rendering the page and (re)connecting was not sent: the table
  // and the summaries are read once more as the feed opens.
  source.addEventListener("open", function () {
    const table = document.getElementById("table");
    if (table && window.htmx) {
      htmx.ajax("GET", location.href, {target: "#table", select: "#table", swap: "outerHTML"});
    }
    refreshSummaries();
  });
  source.addEventListener("phase", function (message) {
    const change = JSON.parse(message.data);
    if ((seen[change.id] || 0) >= change.sequence) return;  // an older one arriving late
    seen[change.id] = change.sequence;
    document.querySelectorAll('[data-workload-id="' + change.id + '"]').forEach(function (row) {
      row.querySelectorAll("[data-phase]").forEach(function (cell) {
        cell.textContent = change.phase;
        cell.className = "phase phase-" + change.phase;
      });
      row.querySelectorAll("[data-reason]").forEach(function (cell) {
        cell.textContent = change.phase === "Pending" ? (change.message || change.reason)
                                                      : change.reason;
      });
    });
    refreshSummaries();
  });
  source.addEventListener("reload", function () { location.reload(); });
  window.addEventListener("beforeunload", function () { source.close(); });
})();
