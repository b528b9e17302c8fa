// oculi web UI, Inspect view: upload images, score them against a fitted inspector (POST
// /api/v1/inspect), show pass/fail, the finding and the heat-map overlay. Server text goes in
// with textContent only; an overlay is shown only when it is a PNG data: URL.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  function ui() { return window.oculiUI; }

  function card(r) {
    const verdict = ui().el("strong", { cls: r.pass ? "pass" : "fail", text: r.pass ? "pass" : "FAIL" });
    const type = typeof r.class === "string" && r.class ? " (as " + r.class + ")" : "";  // several product types
    const head = ui().el("p", null, [verdict, ui().el("span", { text: " " + r.path + type + ": " + r.finding })]);
    const kids = [head];
    if (typeof r.heatmap === "string" && r.heatmap.startsWith("data:image/png;base64,")) {
      kids.push(ui().el("img", { src: r.heatmap, alt: "anomaly heat-map of " + r.path, cls: "heatmap" }));
    }
    (r.warnings || []).forEach((w) => kids.push(ui().el("p", { cls: "muted", text: "warning: " + w })));
    return ui().el("div", { cls: "inspect-result", "data-pass": String(r.pass) }, kids);
  }

  $("in-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    ui().setError("in-error", "");
    const out = $("in-results");
    ui().clear(out);
    const files = $("in-files").files;
    if (!files.length) return;
    const form = new FormData();
    form.append("name", $("in-name").value.trim());
    form.append("heatmaps", "true");
    Array.from(files).slice(0, 16).forEach((f) => form.append("image", f, f.name));
    out.appendChild(ui().el("p", { cls: "muted", text: "inspecting " + Math.min(files.length, 16) + " image(s)…" }));
    try {
      const res = await ui().api("/api/v1/inspect", { method: "POST", body: form });
      ui().clear(out);
      res.results.forEach((r) => out.appendChild(card(r)));
      res.errors.forEach((e) => out.appendChild(ui().el("p", { cls: "error", text: e.path + ": " + e.error })));
      document.body.dataset.inspectReady = String(res.results.length);
    } catch (e) { ui().clear(out); ui().setError("in-error", e.message); }
  });
})();
