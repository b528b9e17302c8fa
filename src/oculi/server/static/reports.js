// oculi web UI, Reports view: upload images (and records), start a report job, download the file.
// Uses the helpers app.js shares as window.oculiUI; server text goes in with textContent only.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  function ui() { return window.oculiUI; }

  async function download(job) {
    try {
      const resp = await ui().api(job.download, { raw: true });
      const url = URL.createObjectURL(await resp.blob());
      const a = ui().el("a", { href: url, download: "report-" + job.id + "." + (job.format === "md" ? "zip" : job.format) });
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) { ui().setError("rp-error", e.message); }
  }

  async function loadJobs() {
    const body = $("rp-jobs");
    try {
      const res = await ui().api("/api/v1/reports?limit=20");
      ui().clear(body);
      res.jobs.forEach((j) => {
        const r = j.result || {};
        const btn = ui().el("button", { type: "button", cls: "link", text: j.state === "done" ? "download" : "" });
        if (j.state === "done") btn.addEventListener("click", () => download(j));
        body.appendChild(ui().el("tr", { "data-job": j.id, "data-state": j.state }, [
          ui().el("td", { text: r.title || j.id }), ui().el("td", { text: j.report_kind + " · " + j.format }),
          ui().el("td", { text: j.state + (j.error ? ": " + j.error : "") }), ui().el("td", { text: String(j.images) }),
          ui().el("td", { text: r.severity || "" }), ui().el("td", { text: r.conflicts === undefined ? "" : String(r.conflicts) }),
          ui().el("td", {}, [btn])]));
      });
      return res.jobs;
    } catch (e) { ui().setError("rp-error", e.message); return []; }
  }

  async function follow(id) {
    for (let i = 0; i < 600; i++) {
      const jobs = await loadJobs();
      const j = jobs.find((x) => x.id === id);
      if (!j || ["done", "failed", "cancelled"].indexOf(j.state) >= 0) {
        $("rp-status").textContent = j ? "report " + j.state + (j.error ? ": " + j.error : "") : "";
        document.body.dataset.reportState = j ? j.state : "gone";
        return;
      }
      $("rp-status").textContent = "writing the report… " + (j.done || 0) + "/" + j.images + " images";
      await new Promise((r) => setTimeout(r, 700));
    }
  }

  $("rp-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    ui().setError("rp-error", "");
    $("rp-status").textContent = "uploading…";
    const fd = new FormData();
    Array.from($("rp-images").files).forEach((f) => fd.append("images", f, f.name));
    const rec = $("rp-records").files[0];
    if (rec) fd.append("records", rec, rec.name);
    fd.append("kind", $("rp-kind").value);
    fd.append("format", $("rp-format").value);
    if ($("rp-inspector").value.trim()) fd.append("inspector", $("rp-inspector").value.trim());
    if ($("rp-encoding").value.trim()) fd.append("records_encoding", $("rp-encoding").value.trim());
    document.body.dataset.reportState = "submitting";
    try {
      const job = await ui().api("/api/v1/reports", { method: "POST", body: fd });
      await follow(job.id);
    } catch (e) { $("rp-status").textContent = ""; ui().setError("rp-error", e.message); document.body.dataset.reportState = "refused"; }
  });
  document.addEventListener("oculi:tab", (ev) => { if (ev.detail === "reports") loadJobs(); });
})();
