// oculi web UI, Footage view: a source's timeline of events with their keyframes, and questions.
// Uses the helpers app.js shares as window.oculiUI; server text goes in with textContent only.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const TYPES = { appear: "#3cb44b", leave: "#9a6324", zone_enter: "#4363d8", zone_leave: "#42d4f4", dwell: "#911eb4",
                  loitering: "#e6194b", crowding: "#f58231" };
  const LANES = { appear: 10, leave: 10, zone_enter: 28, zone_leave: 28, dwell: 46, loitering: 58, crowding: 70 };
  let collection = null;
  const thumbs = {};

  function ui() { return window.oculiUI; }
  function fmt(iso) { return (iso || "").slice(11, 19); }

  async function thumbnail(id) {
    if (!thumbs[id]) {
      const resp = await ui().api("/api/v1/collections/" + encodeURIComponent(collection) + "/items/" + id + "/thumbnail", { raw: true });
      thumbs[id] = URL.createObjectURL(await resp.blob());
    }
    return thumbs[id];
  }

  async function loadCollections() {
    const sel = $("fg-collection");
    ui().clear(sel);
    try {
      const res = await ui().api("/api/v1/collections");
      res.collections.forEach((c) => sel.appendChild(ui().el("option", { value: c.name, text: c.name })));
      if (res.collections.length) { sel.value = collection && res.collections.some((c) => c.name === collection) ? collection : res.collections[0].name; await loadSources(); }
    } catch (e) { ui().setError("fg-error", e.message); }
  }

  async function loadSources() {
    collection = $("fg-collection").value;
    const list = $("fg-sources");
    ui().clear(list);
    try {
      const res = await ui().api("/api/v1/collections/" + encodeURIComponent(collection) + "/sources");
      res.sources.forEach((s) => {
        const li = ui().el("li", { "data-source": s.id }, [ui().el("span", { text: s.camera }), ui().el("span", { cls: "n", text: (s.start || "").slice(0, 16).replace("T", " ") })]);
        li.addEventListener("click", () => openSource(s.id, li));
        list.appendChild(li);
      });
      if (!res.sources.length) list.appendChild(ui().el("li", { cls: "muted", text: "no footage yet (oculi watch …)" }));
    } catch (e) { ui().setError("fg-error", e.message); }
  }

  async function openSource(id, li) {
    document.querySelectorAll("#fg-sources li").forEach((x) => x.classList.toggle("active", x === li));
    ui().setError("fg-error", "");
    try {
      const t = await ui().api("/api/v1/collections/" + encodeURIComponent(collection) + "/sources/" + id + "/timeline");
      $("fg-title").textContent = t.source.camera + " — " + (t.source.start || "").slice(0, 19).replace("T", " ") + " → " + fmt(t.source.end);
      drawTimeline(t);
      await listEvents(t);
      document.body.dataset.footageReady = String(t.events.length);
    } catch (e) { ui().setError("fg-error", e.message); }
  }

  function drawTimeline(t) {
    const box = $("fg-timeline");
    ui().clear(box);
    const t0 = t.source.start_ts, t1 = Math.max(t.source.end_ts || t0 + 1, t0 + 1);
    const x = (ts) => (100 * (ts - t0) / (t1 - t0)).toFixed(3) + "%";
    Object.values(LANES).forEach((top) => { const l = ui().el("div", { cls: "lane" }); l.style.top = (top + 5) + "px"; box.appendChild(l); });
    t.events.forEach((e, i) => {
      const span = e.end_ts - e.start_ts >= 1;
      const m = ui().el("div", { cls: span ? "span" : "mark", title: e.type + " " + fmt(e.start) + (span ? "–" + fmt(e.end) : "") + (e.track_id != null ? " track " + e.track_id : ""), "data-i": String(i) });
      m.style.left = x(e.start_ts); m.style.top = LANES[e.type] + "px"; m.style.background = TYPES[e.type] || "#888";
      if (span) m.style.width = "calc(" + x(e.end_ts) + " - " + x(e.start_ts) + ")";
      m.addEventListener("click", () => select(i));
      box.appendChild(m);
    });
    const a0 = ui().el("span", { cls: "axis", text: fmt(t.source.start) }); a0.style.left = "4px"; box.appendChild(a0);
    const a1 = ui().el("span", { cls: "axis", text: fmt(t.source.end) }); a1.style.right = "4px"; box.appendChild(a1);
    const legend = $("fg-legend");
    ui().clear(legend);
    Object.keys(TYPES).forEach((k) => { const i = ui().el("i"); i.style.background = TYPES[k]; legend.appendChild(ui().el("span", null, [i, document.createTextNode(k.replace("_", " "))])); });
  }

  async function listEvents(t) {
    const body = $("fg-events");
    ui().clear(body);
    for (let i = 0; i < t.events.length; i++) {
      const e = t.events[i];
      const cell = ui().el("td");
      if (e.thumbnail) {
        const img = ui().el("img", { alt: "keyframe " + fmt(e.start) });
        cell.appendChild(img);
        thumbnail(e.thumbnail).then((u) => { img.src = u; }).catch(() => { /* shown as empty */ });
      }
      const what = e.type.replace("_", " ") + (e.seconds ? " (" + Math.round(e.seconds) + " s)" : "") + (e.count ? " (" + e.count + " at once)" : "");
      body.appendChild(ui().el("tr", { "data-i": String(i), cls: "fg-event" }, [
        ui().el("td", { text: fmt(e.start) }), ui().el("td", { text: what }),
        ui().el("td", { text: e.track_id != null ? "#" + e.track_id + " " + (e.label || "") : (e.label || "") }),
        ui().el("td", { text: e.zone || "" }), cell,
      ]));
    }
    if (!t.events.length) body.appendChild(ui().el("tr", null, [ui().el("td", { colspan: "5", cls: "muted", text: "no events" })]));
  }

  function select(i) {
    document.querySelectorAll("#fg-events tr").forEach((r) => r.classList.toggle("sel", r.dataset.i === String(i)));
    const row = document.querySelector('#fg-events tr[data-i="' + i + '"]');
    if (row) row.scrollIntoView({ block: "nearest" });
  }

  $("fg-collection").addEventListener("change", loadSources);
  $("fg-ask-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const q = $("fg-question").value.trim();
    if (!q || !collection) return;
    $("fg-answer").textContent = "…";
    try {
      const a = await ui().api("/api/v1/collections/" + encodeURIComponent(collection) + "/footage/ask",
        { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ question: q }) });
      $("fg-answer").textContent = a.answer;
    } catch (e) { $("fg-answer").textContent = ""; ui().setError("fg-error", e.message); }
  });
  document.addEventListener("oculi:tab", (ev) => { if (ev.detail === "footage") loadCollections(); });
})();
