// dkl live dashboard: folds run documents from the WebSocket and draws them to canvas.
// No build step: plain JavaScript. The server sends {type: "reset"} then {type: "doc"}
// messages; arrays arrive as {__array__: base64 float32 (little-endian), shape}.
"use strict";

const PHASES = ["move", "settle", "exposure", "scalarize", "train", "predict", "acquire"];
const PHASE_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"];
const BUSY = ["move", "settle", "exposure"];
const CMAPS = {
  gray: ["#000000", "#ffffff"],
  viridis: ["#440154", "#482878", "#3e4a89", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"],
  magma: ["#000004", "#180f3d", "#440f76", "#721f81", "#9e2f7f", "#cd4071", "#f1605d", "#fd9668", "#feca8d", "#fcfdbf"],
  cividis: ["#00224e", "#123570", "#3b496c", "#575d6d", "#707173", "#8a8678", "#a59c74", "#c3b369", "#e1cc55", "#fee838"],
  plasma: ["#0d0887", "#41049d", "#6a00a8", "#8f0da4", "#b12a90", "#cc4778", "#e16462", "#f2844b", "#fca636", "#fcce25", "#f0f921"],
};
const MAPS = { prediction: "viridis", uncertainty: "magma", acquisition: "cividis" };

// Everything the page knows; exposed for tests and the curious (window.dklView).
const view = {
  runId: null, start: null, events: [], models: [], maps: null, interruptions: [], stop: null,
  state: "waiting", docs: 0, draws: 0, mapsVersion: null, resets: 0,
};
window.dklView = view;

// ---- decoding -------------------------------------------------------------------------
function decode(value) {
  if (Array.isArray(value)) return value.map(decode);
  if (value && typeof value === "object") {
    if (typeof value.__array__ === "string") {
      const bytes = Uint8Array.from(atob(value.__array__), (c) => c.charCodeAt(0));
      return { shape: value.shape, data: new Float32Array(bytes.buffer) };
    }
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = decode(v);
    return out;
  }
  return value;
}

function reset(runId) {
  Object.assign(view, { runId, start: null, events: [], models: [], maps: null, interruptions: [],
                        stop: null, state: runId ? "running" : "waiting", mapsVersion: null });
  view.resets += 1;
}

function apply(topic, body) {
  view.docs += 1;
  if (topic === "run.start") { view.runId = body.run_id; view.start = body; view.state = "running"; }
  else if (topic === "run.event") { view.events[body.index] = body; }
  else if (topic === "run.model") { view.models.push(body); }
  else if (topic === "run.maps") {
    if (!view.maps || (body.version ?? 0) >= (view.maps.version ?? 0)) { view.maps = body; view.mapsVersion = body.version; }
  } else if (topic === "run.interruption") { view.interruptions.push(body); if (body.state) view.state = body.state; }
  else if (topic === "run.stop") { view.stop = body; view.state = body.exit_status || "stopped"; }
}

// ---- colour ---------------------------------------------------------------------------
const lutCache = {};
function lut(name) {
  if (lutCache[name]) return lutCache[name];
  const stops = CMAPS[name].map((h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)));
  const table = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (stops.length - 1), j = Math.min(Math.floor(t), stops.length - 2), f = t - j;
    for (let c = 0; c < 3; c++) table[i * 3 + c] = stops[j][c] * (1 - f) + stops[j + 1][c] * f;
  }
  return (lutCache[name] = table);
}
function colorOf(name, t) {
  const table = lut(name), i = Math.max(0, Math.min(255, Math.round(t * 255))) * 3;
  return `rgb(${table[i]},${table[i + 1]},${table[i + 2]})`;
}
function range(values) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) if (v !== null && Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
  if (lo === Infinity) return null;
  return hi > lo ? [lo, hi] : [lo - 0.5, hi + 0.5];
}
const fmt = (v, d = 4) => (v === null || v === undefined || !Number.isFinite(v) ? "—" : Number(v.toPrecision(d)).toString());

// ---- drawing --------------------------------------------------------------------------
// Fit an H×W grid into the canvas, keeping the aspect; returns the transform.
function fit(canvas, shape) {
  const [h, w] = shape, s = Math.min(canvas.width / w, canvas.height / h);
  return { s, ox: (canvas.width - w * s) / 2, oy: (canvas.height - h * s) / 2, w, h };
}
function drawArray(canvas, arr, cmap) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const [h, w] = arr.shape, r = range(arr.data), table = lut(cmap);
  const image = new ImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    const v = arr.data[i];
    if (!Number.isFinite(v) || !r) { image.data[i * 4 + 3] = 0; continue; }
    const k = Math.round(((v - r[0]) / (r[1] - r[0])) * 255) * 3;
    image.data.set([table[k], table[k + 1], table[k + 2], 255], i * 4);
  }
  const off = document.createElement("canvas");
  off.width = w; off.height = h;
  off.getContext("2d").putImageData(image, 0, 0);
  const t = fit(canvas, arr.shape);
  ctx.fillStyle = "#444"; ctx.fillRect(t.ox, t.oy, w * t.s, h * t.s);  // NaN: off-candidate
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, t.ox, t.oy, w * t.s, h * t.s);
  return { t, r };
}
const px = (t, x) => t.ox + (x + 0.5) * t.s;
const py = (t, y) => t.oy + (y + 0.5) * t.s;

function markNext(ctx, t, next) {
  if (!next) return;
  const x = px(t, next[0]), y = py(t, next[1]), r = Math.max(5, t.s * 0.9);
  ctx.strokeStyle = "#39ff14"; ctx.lineWidth = 2.5;
  ctx.beginPath(); ctx.moveTo(x - r, y); ctx.lineTo(x + r, y); ctx.moveTo(x, y - r); ctx.lineTo(x, y + r); ctx.stroke();
}
function nextPoint() {
  if (view.stop) return null;  // a finished run measures nothing next
  const events = view.events.filter(Boolean), last = events[events.length - 1];
  if (view.maps && view.maps.next && (!last || (view.maps.version ?? 0) >= (last.model_version ?? 0))) return view.maps.next;
  return last ? last.next : null;
}

function drawSurvey() {
  const canvas = document.getElementById("survey"), ctx = canvas.getContext("2d");
  if (!view.start || !view.start.survey) { ctx.clearRect(0, 0, canvas.width, canvas.height); return; }
  const { t } = drawArray(canvas, view.start.survey, "gray");
  const events = view.events.filter(Boolean);
  ctx.strokeStyle = "rgba(255,255,255,0.35)"; ctx.lineWidth = 1;
  ctx.beginPath();
  events.forEach((e, i) => (i ? ctx.lineTo(px(t, e.x), py(t, e.y)) : ctx.moveTo(px(t, e.x), py(t, e.y))));
  ctx.stroke();
  const r = range(events.map((e) => e.scalar));
  const rad = Math.max(3, t.s * 0.45);
  for (const e of events) {
    const x = px(t, e.x), y = py(t, e.y);
    if (e.scalar === null || e.scalar === undefined || !r) {
      ctx.strokeStyle = "#ff4d4d"; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.moveTo(x - rad, y - rad); ctx.lineTo(x + rad, y + rad);
      ctx.moveTo(x + rad, y - rad); ctx.lineTo(x - rad, y + rad); ctx.stroke();
      continue;
    }
    ctx.fillStyle = colorOf("plasma", (e.scalar - r[0]) / (r[1] - r[0]));
    ctx.beginPath(); ctx.arc(x, y, rad, 0, 2 * Math.PI); ctx.fill();
    ctx.strokeStyle = "black"; ctx.lineWidth = 0.6; ctx.stroke();
  }
  const last = events[events.length - 1];
  if (last) {
    ctx.strokeStyle = "cyan"; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.arc(px(t, last.x), py(t, last.y), rad * 2.2, 0, 2 * Math.PI); ctx.stroke();
  }
  markNext(ctx, t, nextPoint());
  document.getElementById("survey-legend").textContent =
    r ? `scalar ${fmt(r[0])} … ${fmt(r[1])} (plasma)` : "";
}

function drawMaps() {
  for (const [name, cmap] of Object.entries(MAPS)) {
    const canvas = document.getElementById(`map-${name}`), ctx = canvas.getContext("2d");
    const arr = view.maps && view.maps[name];
    if (!arr || !arr.shape) { ctx.clearRect(0, 0, canvas.width, canvas.height); continue; }
    const { t, r } = drawArray(canvas, arr, cmap);
    ctx.fillStyle = "rgba(255,255,255,0.8)";
    for (const e of view.events) if (e) { ctx.beginPath(); ctx.arc(px(t, e.x), py(t, e.y), 1.8, 0, 2 * Math.PI); ctx.fill(); }
    markNext(ctx, t, nextPoint());
    document.getElementById(`legend-${name}`).textContent =
      `v${view.maps.version ?? "?"} · ${r ? `${fmt(r[0])} … ${fmt(r[1])}` : "no data"}`;
  }
}

function axes(canvas, xmax, ylo, yhi, unit) {
  const ctx = canvas.getContext("2d"), m = { l: 56, r: 10, t: 10, b: 24 };
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const W = canvas.width - m.l - m.r, H = canvas.height - m.t - m.b;
  const X = (i) => m.l + ((i + 0.5) / Math.max(1, xmax)) * W;
  const Y = (v) => m.t + H - ((v - ylo) / (yhi - ylo || 1)) * H;
  ctx.strokeStyle = "#555"; ctx.lineWidth = 1; ctx.strokeRect(m.l, m.t, W, H);
  ctx.fillStyle = "#aaa"; ctx.font = "11px sans-serif";
  ctx.fillText(fmt(yhi, 3) + unit, 2, m.t + 10); ctx.fillText(fmt(ylo, 3) + unit, 2, m.t + H);
  ctx.fillText("step 0", m.l, canvas.height - 6); ctx.fillText(`${xmax - 1}`, m.l + W - 20, canvas.height - 6);
  return { ctx, X, Y, W, m };
}

function drawCurves() {
  const canvas = document.getElementById("curves"), events = view.events.filter(Boolean);
  const r = range(events.flatMap((e) => [e.scalar, e.best]));
  if (!r) { canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height); return; }
  const n = Math.max(...events.map((e) => e.index)) + 1;
  const { ctx, X, Y } = axes(canvas, n, r[0], r[1], "");
  ctx.fillStyle = "#58a6ff";
  for (const e of events) if (Number.isFinite(e.scalar)) { ctx.beginPath(); ctx.arc(X(e.index), Y(e.scalar), 2.5, 0, 2 * Math.PI); ctx.fill(); }
  ctx.strokeStyle = "#f0883e"; ctx.lineWidth = 2; ctx.beginPath();
  let started = false;
  for (const e of events) {
    if (!Number.isFinite(e.best)) continue;
    if (started) ctx.lineTo(X(e.index), Y(e.best)); else { ctx.moveTo(X(e.index), Y(e.best)); started = true; }
  }
  ctx.stroke();
  document.getElementById("curves-legend").textContent = `best ${fmt(view.events.filter(Boolean).at(-1)?.best)}`;
}

function idleFraction(events) {
  if (view.stop && Number.isFinite(view.stop.idle_fraction)) return view.stop.idle_fraction;
  let busy = 0, total = 0;
  for (const e of events) {
    const t = e.timings || {};
    if (!Number.isFinite(t.step)) continue;
    total += t.step; for (const k of BUSY) if (Number.isFinite(t[k])) busy += t[k];
  }
  return total > 0 ? Math.min(1, Math.max(0, 1 - busy / total)) : null;
}

function drawLatency() {
  const canvas = document.getElementById("latency"), all = view.events.filter(Boolean);
  const events = all.slice(-150);  // the latest steps stay readable
  if (!events.length) { canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height); return; }
  const tops = events.map((e) => Math.max(e.timings?.step ?? 0, PHASES.reduce((s, k) => s + (e.timings?.[k] ?? 0), 0)));
  const first = events[0].index;
  const { ctx, X, Y, W } = axes(canvas, events.length, 0, Math.max(...tops) || 1, " s");
  const bw = Math.max(1, (W / events.length) * 0.85);
  events.forEach((e, i) => {
    let base = 0;
    PHASES.forEach((k, j) => {
      const v = e.timings?.[k];
      if (!Number.isFinite(v) || v <= 0) return;
      ctx.fillStyle = PHASE_COLORS[j];
      ctx.fillRect(X(i) - bw / 2, Y(base + v), bw, Y(base) - Y(base + v));
      base += v;
    });
    const step = e.timings?.step;
    if (Number.isFinite(step) && step > base) {
      ctx.fillStyle = "#888"; ctx.fillRect(X(i) - bw / 2, Y(step), bw, Y(base) - Y(step));
    }
  });
  const legend = PHASES.map((k, j) => `<span style="color:${PHASE_COLORS[j]}">■</span> ${k}`).join(" ");
  document.getElementById("latency-legend").innerHTML = `Latency per step (from #${first}): ${legend} <span style="color:#888">■</span> other`;
  const idle = idleFraction(all);
  document.getElementById("idle").textContent = idle === null ? "" : `microscope idle ${(idle * 100).toFixed(0)}%`;
}

function duration(s) {
  if (s === null || !Number.isFinite(s) || s < 0) return "--:--";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

function drawStatus() {
  const n = view.events.filter(Boolean).length, max = view.start?.max_measurements;
  document.getElementById("run-id").textContent = view.runId ?? "waiting for a run…";
  const badge = document.getElementById("state");
  badge.textContent = view.state; badge.className = `badge ${view.state}`;
  document.getElementById("progress").textContent = max ? `${n} / ${max} measurements` : `${n} measurements`;
  let elapsed = null;
  if (view.stop && Number.isFinite(view.stop.elapsed)) elapsed = view.stop.elapsed;
  else if (view.start && Number.isFinite(view.start.time)) elapsed = Date.now() / 1000 - view.start.time;
  const eta = view.stop ? 0 : (n && max && elapsed !== null ? (elapsed / n) * (max - n) : null);
  document.getElementById("timing").textContent = view.start ? `elapsed ${duration(elapsed)} · ETA ${duration(eta)}` : "";
  const best = view.events.filter(Boolean).at(-1)?.best;
  document.getElementById("best").textContent = view.start ? `best ${fmt(best)}` : "";
  const live = view.start && !view.stop;
  document.getElementById("btn-pause").disabled = !live || view.state === "paused";
  document.getElementById("btn-resume").disabled = !live || view.state !== "paused";
  document.getElementById("btn-stop").disabled = !live;
}

let drawPending = false;
function scheduleDraw() {
  if (drawPending) return;
  drawPending = true;
  setTimeout(() => {
    drawPending = false;
    drawStatus(); drawSurvey(); drawMaps(); drawCurves(); drawLatency();
    view.draws += 1;
  }, 30);
}
setInterval(drawStatus, 1000);  // elapsed time keeps moving between documents

// ---- connection and control -----------------------------------------------------------
function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  const conn = document.getElementById("conn");
  ws.onopen = () => { conn.textContent = "live"; };
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.type === "reset") reset(msg.run_id);
    else if (msg.type === "doc") apply(msg.topic, decode(msg.body));
    scheduleDraw();
  };
  ws.onclose = () => { conn.textContent = "disconnected — reconnecting…"; setTimeout(connect, 1000); };
}

async function control(action) {
  const out = document.getElementById("control-msg");
  out.className = ""; out.textContent = `${action}…`;
  try {
    const response = await fetch("api/control", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ action }),
    });
    const reply = await response.json();
    out.className = reply.ok ? "ok" : "error";
    out.textContent = reply.ok ? `${action} accepted` : `${action} refused: ${reply.error}`;
  } catch (err) {
    out.className = "error"; out.textContent = `${action} failed: ${err}`;
  }
}
for (const button of document.querySelectorAll("button[data-action]")) {
  button.addEventListener("click", () => control(button.dataset.action));
}
connect();
scheduleDraw();
