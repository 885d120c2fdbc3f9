/**
 * The dashboard at /ui: one self-contained page (inline CSS and JS, nothing fetched but this
 * daemon's own /status and /ui/data). Everything from the daemon is put on the page with
 * textContent, never as HTML: a key's reason may quote an upstream.
 */
export const DASHBOARD_HTML = /* html */ `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>keypool</title>
<style>
  :root { --bg:#f6f7f9; --card:#fff; --ink:#1d2330; --muted:#6b7385; --line:#e3e6ec;
    --unknown:#8a93a6; --live:#1f9d55; --cooling:#d69e2e; --quarantined:#dd6b20; --dead:#c53030; --disabled:#4a5568; --req:#3b82f6; --err:#e53e3e; }
  @media (prefers-color-scheme: dark) { :root { --bg:#12151c; --card:#1b2030; --ink:#e6e9ef; --muted:#9aa3b5; --line:#2b3245; } }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background:var(--bg); color:var(--ink); }
  header { display:flex; align-items:center; gap:16px; padding:14px 24px; border-bottom:1px solid var(--line); background:var(--card); }
  header h1 { font-size:18px; margin:0; letter-spacing:.3px; }
  header .status { color:var(--muted); font-size:13px; }
  header .status.bad { color:var(--err); }
  header button { margin-left:auto; }
  main { padding:20px 24px; max-width:1280px; margin:0 auto; }
  .cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(320px, 1fr)); gap:16px; margin-bottom:24px; }
  .card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:14px 16px; }
  .card h2 { font-size:16px; margin:0 0 2px; display:flex; justify-content:space-between; }
  .card h2 small { color:var(--muted); font-weight:normal; font-size:13px; }
  .bar { display:flex; height:8px; border-radius:4px; overflow:hidden; background:var(--line); margin:10px 0 8px; }
  .pills { display:flex; flex-wrap:wrap; gap:6px 12px; font-size:12.5px; color:var(--muted); }
  .pills b { color:var(--ink); }
  .dot { display:inline-block; width:9px; height:9px; border-radius:50%; margin-right:4px; vertical-align:baseline; }
  .cache { margin-top:8px; font-size:12.5px; color:var(--muted); }
  .cache b { color:var(--ink); }
  .chart { margin-top:12px; }
  .chart svg { width:100%; height:64px; display:block; }
  .chart .legend { display:flex; justify-content:space-between; font-size:12px; color:var(--muted); }
  table { width:100%; border-collapse:collapse; background:var(--card); border:1px solid var(--line); border-radius:10px; overflow:hidden; }
  th, td { text-align:left; padding:7px 10px; border-bottom:1px solid var(--line); font-size:13px; vertical-align:top; }
  th { color:var(--muted); font-weight:600; background:var(--bg); }
  td.num { text-align:right; font-variant-numeric:tabular-nums; }
  td.mono, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size:12.5px; }
  .badge { display:inline-block; padding:1px 8px; border-radius:10px; color:#fff; font-size:12px; }
  .muted { color:var(--muted); }
  .pair { white-space:nowrap; font-size:12.5px; }
  form.login { max-width:360px; margin:60px auto; background:var(--card); border:1px solid var(--line); border-radius:10px; padding:20px; }
  form.login input { width:100%; padding:8px; margin:8px 0 12px; border:1px solid var(--line); border-radius:6px; background:var(--bg); color:var(--ink); }
  button { padding:6px 12px; border-radius:6px; border:1px solid var(--line); background:var(--card); color:var(--ink); cursor:pointer; }
  [hidden] { display:none !important; }
</style>
</head>
<body>
<header>
  <h1>keypool</h1>
  <span id="conn" class="status">connecting…</span>
  <button id="logout" type="button" hidden>Forget API key</button>
</header>
<form id="login" class="login" hidden>
  <strong>This keypool needs its API key</strong>
  <div class="muted">It is kept in this tab's sessionStorage and sent as X-API-Key.</div>
  <input id="key" type="password" autocomplete="current-password" placeholder="server.api_key" required>
  <button type="submit">Open dashboard</button>
  <div id="login-error" class="status bad"></div>
</form>
<main id="main" hidden>
  <section id="cards" class="cards" aria-label="pools"></section>
  <table aria-label="keys">
    <thead><tr><th>Pool</th><th>Key</th><th>Token</th><th>State</th><th>Reason</th><th>Until</th><th title="Models this key cannot serve now (it serves its other models), and the tokens file's models= restriction">Models</th><th class="num">Requests</th><th class="num">Errors</th><th class="num">In flight</th><th class="num" title="Prompt-cache hit ratio over the last day: cached input tokens / input tokens">Cache hit</th><th class="num" title="Spend against the key's caps (budget_day=, budget_month=) or, under its pool's budget, today's spend">Spend</th></tr></thead>
    <tbody id="keys"></tbody>
  </table>
</main>
<script>
(() => {
  const STATES = ["live", "unknown", "cooling", "quarantined", "dead", "disabled"];
  const KEY_STORE = "keypool.apiKey";
  const params = new URLSearchParams(location.search);
  // ?interval= from 250 ms to a minute; NaN (interval=abc) or Infinity would make the timer fire back to back.
  const intervalMs = Math.min(60000, Math.max(250, Number(params.get("interval")) || 2000));
  const $ = (id) => document.getElementById(id);
  const color = (state) => getComputedStyle(document.documentElement).getPropertyValue("--" + state).trim() || "#888";
  let clockOffsetMs = 0;
  let timer;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "style") node.style.cssText = v;
      else if (k === "class") node.className = v;
      else node.setAttribute(k, v);
    }
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  }
  function svg(tag, attrs) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    return node;
  }

  async function get(path) {
    const headers = {};
    const key = sessionStorage.getItem(KEY_STORE);
    if (key) headers["x-api-key"] = key;
    const response = await fetch(path, { headers, cache: "no-store" });
    if (response.status === 401) throw Object.assign(new Error("unauthorized"), { unauthorized: true });
    if (!response.ok) throw new Error(path + " answered HTTP " + response.status);
    return response.json();
  }

  async function refresh() {
    try {
      const [status, data] = await Promise.all([get("/status"), get("/ui/data")]);
      clockOffsetMs = Date.parse(data.now) - Date.now();
      $("login").hidden = true;
      $("main").hidden = false;
      $("logout").hidden = !sessionStorage.getItem(KEY_STORE);
      renderCards(status, data);
      renderKeys(status.keys);
      $("conn").className = "status";
      $("conn").textContent = "updated " + new Date().toLocaleTimeString();
    } catch (error) {
      if (error.unauthorized) return showLogin(sessionStorage.getItem(KEY_STORE) ? "that key was refused" : "");
      $("conn").className = "status bad";
      $("conn").textContent = "cannot reach keypool: " + error.message;
    }
    timer = setTimeout(refresh, intervalMs);
  }

  function showLogin(message) {
    clearTimeout(timer);
    $("main").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message;
    $("conn").textContent = "locked";
  }

  function renderCards(status, data) {
    const cards = $("cards");
    cards.replaceChildren();
    for (const [name, summary] of Object.entries(status.pools)) {
      const bar = el("div", { class: "bar" });
      const pills = el("div", { class: "pills" });
      for (const state of STATES) {
        const n = summary.counts[state] || 0;
        if (n > 0 && summary.total > 0) bar.append(el("span", { style: "width:" + (100 * n) / summary.total + "%;background:" + color(state), title: n + " " + state }));
        pills.append(el("span", { "data-state": state }, el("span", { class: "dot", style: "background:" + color(state) }), el("b", {}, n), " " + state));
      }
      const minutes = (data.pools[name] && data.pools[name].minutes) || [];
      cards.append(el("article", { class: "card", "data-pool": name },
        el("h2", {}, name, el("small", {}, summary.total + (summary.total === 1 ? " key" : " keys"))), bar, pills, cacheLine(summary.usage), spendLine(summary.spend), chart(minutes)));
    }
  }

  // The pool's prompt-cache hit ratio over the last day: what sticky sessions are worth.
  function cacheLine(usage) {
    const line = el("div", { class: "cache", "data-cache-hit": "" });
    if (!usage || !usage.input_tokens) line.append("cache hit: no input in the last day");
    else line.append("cache hit ", el("b", {}, percent(usage.cache_hit_ratio)), " · " + compact(usage.cached_tokens) + " of " + compact(usage.input_tokens) + " input tokens (24h)");
    return line;
  }
  // The pool's spend against its budget: nothing for a pool without one.
  function spendLine(spend) {
    const line = el("div", { class: "cache", "data-spend": "" });
    if (spend) line.append("budget ", el("b", {}, spendText(spend)));
    return line;
  }
  function spendText(spend) {
    if (!spend) return "—";
    const words = { day: "today", month: "this month" };
    const parts = ["day", "month"].filter((w) => spend[w].cap_usd !== null)
      .map((w) => dollars(spend[w].spent_usd) + " of " + dollars(spend[w].cap_usd) + " " + words[w]);
    if (parts.length === 0) parts.push(dollars(spend.day.spent_usd) + " today");
    return parts.join(", ") + (spend.day.unpriced ? " (+" + spend.day.unpriced + " unpriced)" : "");
  }
  function dollars(usd) {
    return usd >= 1 || usd === 0 ? "$" + usd.toFixed(2) : "$" + Number(usd.toPrecision(4));
  }
  function percent(ratio) {
    return ratio === null || ratio === undefined ? "—" : (Math.round(ratio * 1000) / 10) + "%";
  }
  function compact(n) {
    return n < 1000 ? String(n) : n < 1e6 ? (n / 1000).toFixed(1).replace(/\\.0$/, "") + "k" : (n / 1e6).toFixed(1).replace(/\\.0$/, "") + "M";
  }

  function chart(minutes) {
    const requests = minutes.reduce((s, m) => s + m.requests, 0);
    const errors = minutes.reduce((s, m) => s + m.errors, 0);
    const max = Math.max(1, ...minutes.map((m) => m.requests));
    const width = 300, height = 60, step = width / Math.max(1, minutes.length);
    const plot = svg("svg", { viewBox: "0 0 " + width + " " + height, preserveAspectRatio: "none", role: "img", "aria-label": "requests per minute, last hour" });
    plot.append(svg("line", { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, stroke: color("line"), "stroke-width": 1 }));
    minutes.forEach((m, i) => {
      if (m.requests === 0) return;
      const h = Math.max(1.5, (m.requests / max) * (height - 4));
      const eh = m.errors ? Math.max(1.5, (m.errors / max) * (height - 4)) : 0;
      const x = i * step + 0.5;
      const g = svg("g", {});
      const title = svg("title", {});
      title.textContent = new Date(m.minute * 60000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) + ": " + m.requests + " requests, " + m.errors + " errors";
      g.append(title, svg("rect", { x, y: height - h, width: step - 1, height: h, fill: color("req") }));
      if (eh) g.append(svg("rect", { x, y: height - eh, width: step - 1, height: eh, fill: color("err") }));
      plot.append(g);
    });
    const rate = requests ? ((100 * errors) / requests).toFixed(1) + "% errors" : "no traffic";
    return el("div", { class: "chart" }, plot,
      el("div", { class: "legend" }, el("span", {}, "last hour: " + requests + " requests"), el("span", { "data-error-rate": "" }, rate)));
  }

  function renderKeys(keys) {
    const rows = keys.map((k) => el("tr", { "data-key": k.pool + "/" + k.id, "data-state": k.state },
      el("td", {}, k.pool),
      el("td", { class: "mono" }, k.id),
      el("td", { class: "mono muted" }, k.masked),
      el("td", {}, el("span", { class: "badge", style: "background:" + color(k.state) }, k.state)),
      el("td", {}, k.reason || ""),
      el("td", { class: "mono", "data-until": k.until || "" }, countdown(k.until)),
      modelsCell(k),
      el("td", { class: "num" }, k.requests),
      el("td", { class: "num" }, k.errors),
      el("td", { class: "num" }, k.in_flight),
      el("td", { class: "num", "data-cache-hit": "" }, percent(k.usage && k.usage.cache_hit_ratio)),
      el("td", { class: "num", "data-spend": "" }, spendText(k.spend))));
    $("keys").replaceChildren(...rows);
  }

  // One line per model the key rests or lacks (hover for why), and the models= list of a restricted key.
  function modelsCell(k) {
    const cell = el("td", { "data-models": "" });
    for (const [model, pair] of Object.entries(k.models || {}).sort(([a], [b]) => (a < b ? -1 : 1))) {
      const attrs = { class: "pair", "data-model": model, "data-pair-state": pair.state, title: pair.reason || "" };
      const badge = "background:" + color(pair.state === "denied" ? "dead" : "cooling");
      cell.append(el("div", attrs, el("span", { class: "mono" }, model), " ",
        el("span", { class: "badge", style: badge }, pair.state), " ",
        el("span", { class: "mono muted", "data-until": pair.until }, countdown(pair.until))));
    }
    if (k.only_models) {
      cell.append(el("div", { class: "muted", "data-only-models": "" }, "only " + k.only_models.join(", ")));
    }
    return cell;
  }

  function countdown(until) {
    if (!until) return "—";
    const s = Math.round((Date.parse(until) - (Date.now() + clockOffsetMs)) / 1000);
    if (s <= 0) return "now";
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return "in " + (h ? h + "h " + String(m).padStart(2, "0") + "m" : m ? m + "m " + String(sec).padStart(2, "0") + "s" : sec + "s");
  }
  setInterval(() => { for (const cell of document.querySelectorAll("[data-until]")) cell.textContent = countdown(cell.dataset.until); }, 1000);

  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORE, $("key").value);
    $("key").value = "";
    refresh();
  });
  $("logout").addEventListener("click", () => { sessionStorage.removeItem(KEY_STORE); showLogin(""); });
  refresh();
})();
</script>
</body>
</html>
`;
