// oculi web UI, Reports view: upload images (and records), start a report job, download the file;
// or a camera's day from stored footage (kind "footage"), written at once and downloaded.
// Uses the helpers app.js shares as window.oculiUI; server text goes in with textContent only.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  function ui() { return window.oculiUI; }

  async function download(job) {
    try {
      const resp = await ui().api(job.download, { raw: true });
      saveBlob(await resp.blob(), "report-" + job.id + "." + (job.format === "md" ? "zip" : job.format));
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
          ui().el("td", { text: r.title || j.id }),
          ui().el("td", { text: j.report_kind + " · " + j.format + (r.narrator ? " · summary by " + r.narrator : "") }),
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

  // --- footage fields: the collection's cameras; shown for incident (optional) and footage reports
  function kind() { return $("rp-kind").value; }
  function enc(v) { return encodeURIComponent(v); }

  async function loadCollections() {
    const sel = $("rp-collection");
    const keep = sel.value;
    try {
      const res = await ui().api("/api/v1/collections");
      ui().clear(sel);
      sel.appendChild(ui().el("option", { value: "", text: "(none)" }));
      res.collections.forEach((c) => sel.appendChild(ui().el("option", { value: c.name, text: c.name })));
      if (keep && res.collections.some((c) => c.name === keep)) sel.value = keep;
      else if (kind() === "footage" && res.collections.length) sel.value = res.collections[0].name;
      await loadCameras();
    } catch (e) { ui().setError("rp-error", e.message); }
  }

  async function loadCameras() {
    const list = $("rp-cameras");
    ui().clear(list);
    const coll = $("rp-collection").value;
    if (!coll) return;
    try {
      const res = await ui().api("/api/v1/collections/" + enc(coll) + "/sources");
      const cams = Array.from(new Set(res.sources.map((s) => s.camera))).sort();
      cams.forEach((c) => list.appendChild(ui().el("option", { value: c })));
      if (!$("rp-camera").value && cams.length) $("rp-camera").value = cams[0];
      const days = res.sources.map((s) => (s.start || "").slice(0, 10)).filter((d) => d).sort();
      if (!$("rp-day").value && days.length) $("rp-day").value = days[days.length - 1];
      document.body.dataset.reportCameras = String(cams.length);
    } catch (e) { ui().setError("rp-error", e.message); }
  }

  // The configured chat models (GET /api/v1/models, those that chat) can write the summary; the
  // server checks each sentence against the evidence. Default: the built-in template.
  async function loadModels() {
    const sel = $("rp-model");
    const keep = sel.value;
    try {
      const res = await ui().api("/api/v1/models");
      const chat = res.models.filter((m) => m.ok && (m.capabilities || []).indexOf("chat") >= 0);
      ui().clear(sel);
      sel.appendChild(ui().el("option", { value: "", text: "the built-in template" }));
      chat.forEach((m) => sel.appendChild(ui().el("option", { value: m.name, text: m.name + (m.model_id && m.model_id !== m.name ? " (" + m.model_id + ")" : "") })));
      if (keep && chat.some((m) => m.name === keep)) sel.value = keep;
      document.body.dataset.reportModels = String(chat.length);
    } catch (e) { ui().setError("rp-error", e.message); }
  }

  function showFields() {
    const k = kind();
    const footage = k === "footage";
    $("rp-image-fields").classList.toggle("hidden", footage);
    $("rp-images").required = !footage;
    $("rp-footage-fields").classList.toggle("hidden", !(footage || k === "incident"));
    $("rp-footage-legend").textContent = footage ? "The camera and day to report on" : "Footage to check the records' times against (optional)";
    ["rp-collection", "rp-camera", "rp-day"].forEach((id) => { $(id).required = footage; });
    if (footage || k === "incident") loadCollections();
  }

  function saveBlob(blob, name) {
    const url = URL.createObjectURL(blob);
    const a = ui().el("a", { href: url, download: name });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  // A camera's day: GET .../footage/report (no job: it reads stored events, no model runs).
  // The JSON form first, to show the summary; then the chosen format, downloaded.
  async function footageReport() {
    const coll = $("rp-collection").value, camera = $("rp-camera").value.trim(), day = $("rp-day").value;
    if (!coll || !camera || !day) throw new Error("A footage report needs a collection, a camera and a day.");
    const fmt = $("rp-format").value;
    let q = "?camera=" + enc(camera) + "&day=" + enc(day);
    if ($("rp-tz").value.trim()) q += "&tz=" + enc($("rp-tz").value.trim());
    const base = "/api/v1/collections/" + enc(coll) + "/footage/report" + q;
    $("rp-status").textContent = "writing the footage report…";
    const rep = await ui().api(base + "&format=json");
    $("rp-footage-title").textContent = rep.title + " · threat level " + rep.threat_level;
    $("rp-footage-summary").textContent = rep.summary;
    $("rp-footage-result").classList.remove("hidden");
    const name = "footage-" + camera.replace(/[^A-Za-z0-9_-]+/g, "-") + "-" + day + "." + fmt;
    const blob = fmt === "json" ? new Blob([JSON.stringify(rep, null, 2)], { type: "application/json" })
      : await (await ui().api(base + "&format=" + enc(fmt), { raw: true })).blob();
    saveBlob(blob, name);
    $("rp-status").textContent = "footage report written: " + name;
    document.body.dataset.reportState = "done";
  }

  $("rp-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    ui().setError("rp-error", "");
    $("rp-footage-result").classList.add("hidden");
    document.body.dataset.reportState = "submitting";
    if (kind() === "footage") {
      try { await footageReport(); } catch (e) { $("rp-status").textContent = ""; ui().setError("rp-error", e.message); document.body.dataset.reportState = "refused"; }
      return;
    }
    $("rp-status").textContent = "uploading…";
    const fd = new FormData();
    Array.from($("rp-images").files).forEach((f) => fd.append("images", f, f.name));
    const rec = $("rp-records").files[0];
    if (rec) fd.append("records", rec, rec.name);
    fd.append("kind", kind());
    fd.append("format", $("rp-format").value);
    if ($("rp-inspector").value.trim()) fd.append("inspector", $("rp-inspector").value.trim());
    if ($("rp-encoding").value.trim()) fd.append("records_encoding", $("rp-encoding").value.trim());
    if ($("rp-model").value) fd.append("model", $("rp-model").value);
    if (kind() === "incident" && $("rp-collection").value) {  // footage the records' times are checked against
      fd.append("collection", $("rp-collection").value);
      if ($("rp-camera").value.trim()) fd.append("camera", $("rp-camera").value.trim());
      if ($("rp-day").value) fd.append("day", $("rp-day").value);
      if ($("rp-tz").value.trim()) fd.append("tz", $("rp-tz").value.trim());
    }
    try {
      const job = await ui().api("/api/v1/reports", { method: "POST", body: fd });
      await follow(job.id);
    } catch (e) { $("rp-status").textContent = ""; ui().setError("rp-error", e.message); document.body.dataset.reportState = "refused"; }
  });
  $("rp-kind").addEventListener("change", showFields);
  $("rp-collection").addEventListener("change", () => { $("rp-camera").value = ""; $("rp-day").value = ""; loadCameras(); });
  document.addEventListener("oculi:tab", (ev) => { if (ev.detail === "reports") { loadJobs(); loadModels(); showFields(); } });
})();
