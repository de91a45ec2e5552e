// The dashboard's own script: follows a running run's log through Server-Sent
// Events. Everything else works without it (htmx refreshes lists in place).

function followLog() {
  const log = document.getElementById("log");
  if (!log?.dataset.follow) return;
  const source = new EventSource(`${log.dataset.follow}?after=${log.dataset.offset || 0}`);
  source.addEventListener("log", (event) => {
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 24;
    log.append(document.createTextNode(event.data));
    log.dataset.offset = event.lastEventId;
    if (atEnd) log.scrollTop = log.scrollHeight;
  });
  source.addEventListener("end", (event) => {
    source.close();
    const status = document.getElementById("run-status");
    if (status) status.dataset.status = event.data;
    // The finished run's page shows its plan, summary and step timings.
    window.location.reload();
  });
}

document.addEventListener("DOMContentLoaded", followLog);
