// oculi web UI: vanilla JS, no build step. The API key lives in sessionStorage and goes out as
// "Authorization: Bearer"; everything from the server is put on the page with textContent.
(function () {
  "use strict";
  const AUTH = document.body.dataset.auth === "on";
  const KEY_NAME = "oculi.key";
  const $ = (id) => document.getElementById(id);
  const COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324", "#469990", "#800000"];
  // Search results: below half the best score, with no exact concept matched, a result goes
  // under a "weaker matches" divider; a score that rounds to 0.000 matched nothing and is not shown.
  const WEAK_FRACTION = 0.5;
  const NO_MATCH = 0.0005;
  let currentImage = null;   // File/Blob of the image in the Analyze view
  let currentCollection = null;
  let canWrite = false;
  let jobTimer = null;
  let watchedJob = null;
  let gridToken = 0;
  let detailItem = null;     // {id, blob} of the item in the detail view

  function key() { return sessionStorage.getItem(KEY_NAME) || ""; }

  async function api(path, opts) {
    opts = opts || {};
    const headers = Object.assign({}, opts.headers || {});
    if (AUTH && key()) headers["Authorization"] = "Bearer " + key();
    const resp = await fetch(path, Object.assign({}, opts, { headers: headers }));
    if (resp.status === 401 && AUTH) { const m = "Your key was refused; sign in again."; signOut(m); throw new Error(m); }
    const ctype = resp.headers.get("content-type") || "";
    if (!resp.ok) {
      let msg = resp.status + " " + resp.statusText;
      if (ctype.includes("application/json")) { try { const j = await resp.json(); msg = (j.error && j.error.message) || msg; } catch (e) { /* keep */ } }
      throw new Error(msg);
    }
    if (opts.raw) return resp;
    return ctype.includes("application/json") ? resp.json() : resp.text();
  }

  function el(tag, props, children) {
    const e = document.createElement(tag);
    if (props) for (const k in props) { if (k === "text") e.textContent = props[k]; else if (k === "cls") e.className = props[k]; else e.setAttribute(k, props[k]); }
    (children || []).forEach((c) => e.appendChild(c));
    return e;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function setError(id, msg) { $(id).textContent = msg || ""; }
  function itemPath(id) { return "/api/v1/collections/" + encodeURIComponent(currentCollection) + "/items/" + id; }

  // --- sign in ------------------------------------------------------------------------------
  async function start() {
    if (AUTH && !key()) { showLogin(); return; }
    try {
      const me = await api("/api/v1/whoami");
      $("who").textContent = AUTH ? (me.name || me.key_id) + " · " + me.scope + (me.collection ? " · " + me.collection : "") : "no auth (localhost)";
      $("who").title = $("who").textContent;
      // the server says what the key may do: a read-only key is not offered Upload or Create
      canWrite = (me.scopes || [me.scope]).indexOf("write") >= 0;
      document.body.dataset.canWrite = canWrite ? "1" : "0";
      $("logout").classList.toggle("hidden", !AUTH);
      $("login").classList.add("hidden");
      $("app").classList.remove("hidden");
      document.body.dataset.ready = "1";
    } catch (e) { if (AUTH) showLogin(e.message); else setError("analyze-error", e.message); }
  }
  function showLogin(msg) {
    $("app").classList.add("hidden");
    $("login").classList.remove("hidden");
    $("logout").classList.add("hidden");
    $("who").textContent = "";
    setError("login-error", msg || "");
  }
  function signOut(msg) {
    sessionStorage.removeItem(KEY_NAME);
    resetSession();
    showLogin(msg);
  }
  // Forget everything the last key saw: the next key starts on a clean Analyze tab.
  function resetSession() {
    if (jobTimer) { clearTimeout(jobTimer); jobTimer = null; }
    watchedJob = null; currentCollection = null; currentImage = null; canWrite = false;
    gridToken++;
    ["ready", "canWrite", "captioned", "answered", "searched", "jobDone", "detail", "similar"].forEach((k) => delete document.body.dataset[k]);
    if ($("detail").open) $("detail").close();
    showTab("analyze");
    clear($("collection-list")); clear($("grid")); clear($("jobs-body"));
    $("grid-note").textContent = ""; $("col-title").textContent = "Choose a collection";
    $("col-tools").classList.add("hidden"); $("job-box").classList.add("hidden");
    resetAnalyze("No image yet.");
    $("canvas-wrap").classList.add("hidden");
    ["analyze-error", "col-error"].forEach((id) => setError(id, ""));
  }
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY_NAME, $("key").value.trim());
    $("key").value = "";
    await start();
  });
  $("logout").addEventListener("click", () => signOut(""));

  // --- tabs ---------------------------------------------------------------------------------
  function showTab(name) {
    document.querySelectorAll(".tab").forEach((x) => {
      const on = x.dataset.tab === name;
      x.classList.toggle("active", on);
      x.setAttribute("aria-selected", on ? "true" : "false");
    });
    document.querySelectorAll(".view").forEach((v) => v.classList.toggle("hidden", v.id !== "view-" + name));
  }
  document.querySelectorAll(".tab").forEach((t) => t.addEventListener("click", () => {
    showTab(t.dataset.tab);
    if (t.dataset.tab === "collections") loadCollections();
    if (t.dataset.tab === "jobs") loadJobs();
    document.dispatchEvent(new CustomEvent("oculi:tab", { detail: t.dataset.tab }));
  }));

  // --- drawing ------------------------------------------------------------------------------
  // Draw an image on a canvas with boxes; ``scale`` maps the boxes' pixel coordinates (of the
  // original image) onto the image drawn (a thumbnail is smaller than the original).
  function drawBoxes(canvas, img, objects, scale, textLines) {
    const maxW = 1024;
    const fit = img.naturalWidth > maxW ? maxW / img.naturalWidth : 1;
    canvas.width = Math.round(img.naturalWidth * fit);
    canvas.height = Math.round(img.naturalHeight * fit);
    const k = scale * fit;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    ctx.lineWidth = Math.max(2, canvas.width / 300);
    ctx.font = Math.max(11, Math.round(canvas.width / 45)) + "px system-ui, sans-serif";
    // text read: thin dashed boxes, no labels (the text is listed beside the image)
    ctx.save(); ctx.setLineDash([4, 3]); ctx.strokeStyle = "#ffd400"; ctx.lineWidth = Math.max(1, canvas.width / 500);
    (textLines || []).forEach((t) => { if (t.box) { const [x1, y1, x2, y2] = t.box.map((v) => v * k); ctx.strokeRect(x1, y1, x2 - x1, y2 - y1); } });
    ctx.restore();
    objects.forEach((o, i) => {
      if (!o.box) return;
      const c = COLOURS[i % COLOURS.length];
      const [x1, y1, x2, y2] = o.box.map((v) => v * k);
      ctx.strokeStyle = c; ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
      const label = (o.label || o.text || "") + (o.score != null ? " " + Math.round(o.score * 100) + "%" : "");
      const tw = ctx.measureText(label).width + 8, th = parseInt(ctx.font, 10) + 6;
      const ty = y1 - th < 0 ? y1 : y1 - th;
      ctx.fillStyle = c; ctx.fillRect(x1, ty, tw, th);
      ctx.fillStyle = "#fff"; ctx.fillText(label, x1 + 4, ty + th - 5);
    });
  }

  function listObjects(ul, objects) {
    clear(ul);
    objects.forEach((o, i) => {
      const sw = el("span", { cls: "sw" }); sw.style.background = COLOURS[i % COLOURS.length];
      ul.appendChild(el("li", null, [sw, document.createTextNode(o.label + " " + (o.score != null ? o.score.toFixed(2) : "") + (o.colour ? " · " + o.colour : ""))]));
    });
    if (!objects.length) ul.appendChild(el("li", { cls: "muted", text: "none found" }));
  }

  // --- analyze ------------------------------------------------------------------------------
  const drop = $("drop");
  ["dragenter", "dragover"].forEach((n) => drop.addEventListener(n, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((n) => drop.addEventListener(n, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", (e) => { if (e.dataTransfer.files.length) analyze(e.dataTransfer.files[0]); });
  $("file").addEventListener("change", (e) => { if (e.target.files.length) analyze(e.target.files[0]); });

  function form(file, fields) {
    const fd = new FormData();
    fd.append("image", file, file.name || "image");
    for (const k in fields || {}) fd.append(k, fields[k]);
    return fd;
  }

  function resetAnalyze(captionText) {
    $("caption").textContent = captionText;
    $("caption").classList.add("muted"); $("caption").classList.remove("error");
    clear($("objects")); $("text-read").textContent = "—"; $("text-read").classList.add("muted");
    $("answer").textContent = ""; clear($("evidence"));
  }

  async function analyze(file) {
    currentImage = file;
    setError("analyze-error", "");
    delete document.body.dataset.captioned;
    resetAnalyze("Looking…");
    $("text-read").textContent = "…";
    const url = URL.createObjectURL(file);
    const img = new Image();
    img.src = url;
    try { await img.decode(); } catch (e) { /* the server will say what is wrong */ }
    try {
      const res = await api("/api/v1/caption", { method: "POST", body: form(file, { detailed: $("detailed").checked ? "true" : "false" }) });
      $("caption").textContent = res.caption;
      $("caption").classList.remove("muted");
      const obs = res.observation || {};
      drawBoxes($("canvas"), img, obs.objects || [], 1, obs.text || []);
      $("canvas-wrap").classList.remove("hidden");
      listObjects($("objects"), obs.objects || []);
      const lines = (obs.text || []).map((t) => t.text);
      $("text-read").textContent = lines.length ? lines.join("\n") : "(no text found)";
      $("text-read").classList.toggle("muted", !lines.length);
      document.body.dataset.captioned = "1";
    } catch (e) {
      // the caption card says what went wrong; nothing stays at "Looking…" or "…"
      $("caption").textContent = "Could not analyse this image: " + e.message;
      $("caption").classList.remove("muted"); $("caption").classList.add("error");
      $("text-read").textContent = "—";
      listObjects($("objects"), []);
      setError("analyze-error", e.message);
      if (img.naturalWidth) { drawBoxes($("canvas"), img, [], 1); $("canvas-wrap").classList.remove("hidden"); }
      else $("canvas-wrap").classList.add("hidden");
      document.body.dataset.captioned = "error";
    } finally { URL.revokeObjectURL(url); }
  }

  $("ask-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const q = $("question").value.trim();
    if (!q) return;
    if (!currentImage) { setError("analyze-error", "Choose an image first."); return; }
    setError("analyze-error", "");
    $("ask-btn").disabled = true;
    $("answer").textContent = "Thinking…"; clear($("evidence"));
    try {
      const res = await api("/api/v1/ask", { method: "POST", body: form(currentImage, { question: q }) });
      $("answer").textContent = res.answer;
      (res.evidence || []).slice(0, 6).forEach((e) => $("evidence").appendChild(el("li", { text: e.description + (e.score != null ? " (" + e.score.toFixed(2) + ")" : "") })));
      if (res.answerable) $("evidence").appendChild(el("li", { text: "confidence " + res.confidence.toFixed(2) }));
      document.body.dataset.answered = "1";
    } catch (e) { $("answer").textContent = ""; setError("analyze-error", e.message); }
    finally { $("ask-btn").disabled = false; }
  });

  // --- collections --------------------------------------------------------------------------
  async function loadCollections() {
    setError("col-error", "");
    try {
      const res = await api("/api/v1/collections");
      const ul = $("collection-list"); clear(ul);
      res.collections.forEach((c) => {
        const li = el("li", { "data-name": c.name, tabindex: "0" }, [el("span", { text: c.name }), el("span", { cls: "n", text: c.status && c.status !== "ok" ? c.status : String(c.items) })]);
        if (c.name === currentCollection) li.classList.add("active");
        li.addEventListener("click", () => openCollection(c.name));
        li.addEventListener("keydown", (e) => { if (e.key === "Enter") openCollection(c.name); });
        ul.appendChild(li);
      });
      if (!res.collections.length) ul.appendChild(el("li", { cls: "muted", text: canWrite ? "none yet" : "none you may see" }));
    } catch (e) { setError("col-error", e.message); }
  }

  $("create-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const name = $("new-collection").value.trim();
    if (!name) return;
    try {
      await api("/api/v1/collections", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name: name }) });
      $("new-collection").value = "";
      await loadCollections();
      openCollection(name);
    } catch (e) { setError("col-error", e.message); }
  });

  async function openCollection(name) {
    currentCollection = name;
    $("col-title").textContent = name;
    $("col-tools").classList.remove("hidden");
    document.querySelectorAll("#collection-list li").forEach((li) => li.classList.toggle("active", li.dataset.name === name));
    await showItems();
  }

  async function showItems() {
    setError("col-error", "");
    const name = currentCollection;
    try {
      const res = await api("/api/v1/collections/" + encodeURIComponent(name) + "/items?limit=120");
      $("grid-note").textContent = res.total + " image" + (res.total === 1 ? "" : "s") + (res.total > res.items.length ? " (showing " + res.items.length + ")" : "");
      renderGrid(res.items.map((it) => ({ id: it.id, caption: it.caption, name: it.name })));
    } catch (e) { setError("col-error", e.message); }
  }

  function tile(it) {
    const box = el("div", { cls: "img" });
    const meta = el("div", { cls: "meta" });
    if (it.score != null) meta.appendChild(el("div", { cls: "score", text: "score " + it.score.toFixed(3) }));
    meta.appendChild(el("div", { cls: "cap", text: it.caption || it.name || it.id }));
    const why = Array.isArray(it.why) ? it.why.slice(0, 2).join("; ") : it.why;
    if (why) meta.appendChild(el("div", { cls: "why", text: why }));
    const t = el("div", { cls: "tile", title: it.name || it.id, "data-id": it.id, role: "button", tabindex: "0" }, [box, meta]);
    t.addEventListener("click", () => openDetail(it));
    t.addEventListener("keydown", (e) => { if (e.key === "Enter") openDetail(it); });
    it._box = box;
    return t;
  }

  // ``items`` in order; a search passes ``weakFrom``: the index of the first weaker match.
  function renderGrid(items, weakFrom) {
    const token = ++gridToken;
    const grid = $("grid"); clear(grid);
    items.forEach((it, i) => {
      if (i === weakFrom) grid.appendChild(el("div", { cls: "divider", role: "separator", text: "Weaker matches" }));
      grid.appendChild(tile(it));
    });
    // thumbnails need the key, so fetch them and show blob: URLs; a few at a time
    let i = 0;
    const worker = async () => {
      while (i < items.length && token === gridToken) {
        const it = items[i++];
        try {
          const resp = await api(itemPath(it.id) + "/thumbnail", { raw: true });
          const blob = await resp.blob();
          if (token !== gridToken) return;
          it._blob = blob;
          const img = el("img", { alt: it.caption || "" });
          img.src = URL.createObjectURL(blob);
          img.onload = () => URL.revokeObjectURL(img.src);
          it._box.appendChild(img);
        } catch (e) { /* leave the grey box */ }
      }
    };
    for (let k = 0; k < 6; k++) worker();
  }

  // Where the weaker matches start: results are best first; a result is strong when it
  // matched a concept exactly or scores at least half the best.
  function splitResults(results) {
    const shown = results.filter((r) => r.score >= NO_MATCH);
    const best = shown.length ? shown[0].score : 0;
    const weakFrom = shown.findIndex((r) => !(r.matched && Object.keys(r.matched).length) && r.score < best * WEAK_FRACTION);
    return { shown: shown, hidden: results.length - shown.length, weakFrom: weakFrom };
  }

  async function search(body, isForm) {
    setError("col-error", "");
    delete document.body.dataset.searched;
    $("search-btn").disabled = true;
    try {
      const opts = isForm ? { method: "POST", body: body } : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
      const res = await api("/api/v1/collections/" + encodeURIComponent(currentCollection) + "/search", opts);
      const s = splitResults(res.results);
      const strong = s.weakFrom < 0 ? s.shown.length : s.weakFrom;
      $("grid-note").textContent = strong + " match" + (strong === 1 ? "" : "es") +
        (s.shown.length > strong ? ", " + (s.shown.length - strong) + " weaker" : "") +
        (s.hidden ? " (" + s.hidden + " with no match not shown)" : "");
      renderGrid(s.shown, s.weakFrom);
      document.body.dataset.searched = "1";
    } catch (e) { setError("col-error", e.message); }
    finally { $("search-btn").disabled = false; }
  }
  $("search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = $("search-text").value.trim();
    if (text) search({ text: text, top_k: 24 });
  });
  function searchByImage(blob, name) {
    const fd = new FormData(); fd.append("image", blob, name || "image.jpg"); fd.append("top_k", "24");
    return search(fd, true);
  }
  $("search-image").addEventListener("change", (ev) => {
    const f = ev.target.files[0]; if (!f) return;
    searchByImage(f, f.name); ev.target.value = "";
  });
  $("show-all").addEventListener("click", showItems);

  // --- detail view --------------------------------------------------------------------------
  async function openDetail(it) {
    const dlg = $("detail");
    detailItem = { id: it.id, blob: null };
    delete document.body.dataset.detail;
    $("detail-title").textContent = it.name || it.id;
    $("detail-caption").textContent = it.caption || "Loading…";
    clear($("detail-objects")); $("detail-text").textContent = "…"; $("detail-meta").textContent = "";
    setError("detail-error", "");
    const canvas = $("detail-canvas"); canvas.width = 0; canvas.height = 0;
    if (!dlg.open) dlg.showModal();
    const id = it.id;
    try {
      const [item, thumb] = await Promise.all([api(itemPath(id)), it._blob ? Promise.resolve(it._blob) : api(itemPath(id) + "/thumbnail", { raw: true }).then((r) => r.blob())]);
      if (!detailItem || detailItem.id !== id) return;
      detailItem.blob = thumb;
      const obs = item.observation || {};
      const objects = obs.objects || [];
      $("detail-title").textContent = item.name || id;
      $("detail-caption").textContent = item.caption || "(no caption)";
      listObjects($("detail-objects"), objects);
      const lines = (obs.text || []).map((t) => t.text);
      $("detail-text").textContent = lines.length ? lines.join("\n") : "(no text found)";
      $("detail-meta").textContent = [item.width && item.height ? item.width + "×" + item.height : "", item.format || "",
        (obs.labels || []).slice(0, 3).map((l) => l.name).filter(Boolean).join(", ")].filter(Boolean).join(" · ");
      const url = URL.createObjectURL(thumb);
      const img = new Image(); img.src = url;
      try { await img.decode(); drawBoxes(canvas, img, objects, item.width ? img.naturalWidth / item.width : 1, obs.text || []); }
      finally { URL.revokeObjectURL(url); }
      document.body.dataset.detail = "1";
    } catch (e) { setError("detail-error", e.message); $("detail-text").textContent = "—"; }
  }
  $("detail-close").addEventListener("click", () => $("detail").close());
  $("detail").addEventListener("click", (e) => { if (e.target === $("detail")) $("detail").close(); });  // the backdrop
  $("detail-similar").addEventListener("click", async () => {
    if (!detailItem || !detailItem.blob) return;
    $("detail").close();
    $("search-text").value = "";
    await searchByImage(detailItem.blob, "similar.jpg");
    document.body.dataset.similar = "1";
  });

  // --- uploads and jobs ---------------------------------------------------------------------
  $("upload").addEventListener("change", async (ev) => {
    const files = Array.from(ev.target.files); if (!files.length) return;
    const fd = new FormData(); files.forEach((f) => fd.append("images", f, f.name));
    ev.target.value = "";
    try {
      const job = await api("/api/v1/collections/" + encodeURIComponent(currentCollection) + "/images", { method: "POST", body: fd });
      watchJob(job.id);
    } catch (e) { setError("col-error", e.message); }
  });

  function watchJob(id) {
    watchedJob = id;
    $("job-box").classList.remove("hidden");
    if (jobTimer) clearTimeout(jobTimer);
    const tick = async () => {
      if (watchedJob !== id) return;
      try {
        const j = await api("/api/v1/jobs/" + id);
        if (watchedJob !== id) return;
        $("job-label").textContent = "Job " + j.id + ": " + j.state + " — " + (j.done + j.failed + (j.in_flight || 0)) + " / " + j.total + (j.failed ? " (" + j.failed + " failed)" : "");
        $("job-bar").style.width = Math.round(j.progress * 100) + "%";
        $("job-cancel").classList.toggle("hidden", !(j.state === "queued" || j.state === "running"));
        if (j.state === "queued" || j.state === "running") { jobTimer = setTimeout(tick, 700); }
        else { document.body.dataset.jobDone = j.state; if (j.collection === currentCollection) { showItems(); loadCollections(); } }
      } catch (e) { setError("col-error", e.message); }
    };
    tick();
  }
  $("job-cancel").addEventListener("click", async () => {
    if (!watchedJob) return;
    try { await api("/api/v1/jobs/" + watchedJob + "/cancel", { method: "POST" }); } catch (e) { setError("col-error", e.message); }
  });

  async function loadJobs() {
    const body = $("jobs-body"); clear(body);
    try {
      const res = await api("/api/v1/jobs");
      res.jobs.forEach((j) => {
        const cancel = el("button", { cls: "link", text: "cancel" });
        cancel.addEventListener("click", async () => { try { await api("/api/v1/jobs/" + j.id + "/cancel", { method: "POST" }); loadJobs(); } catch (e) { /* shown on reload */ } });
        const active = j.state === "queued" || j.state === "running";
        body.appendChild(el("tr", null, [
          el("td", null, [el("code", { text: j.id })]), el("td", { text: j.collection }), el("td", { text: j.state }),
          el("td", { text: Math.round(j.progress * 100) + "%" }), el("td", { text: j.done + " done, " + j.failed + " failed of " + j.total }),
          el("td", null, active && canWrite ? [cancel] : []),
        ]));
      });
      if (!res.jobs.length) body.appendChild(el("tr", null, [el("td", { text: "no jobs yet", colspan: "6", cls: "muted" })]));
    } catch (e) { body.appendChild(el("tr", null, [el("td", { text: e.message, colspan: "6", cls: "error" })])); }
  }

  // shared with the other views' scripts (footage.js)
  window.oculiUI = { api: api, el: el, clear: clear, setError: setError, COLOURS: COLOURS };

  start();
})();
