// Flotilla console: progressive enhancement only; every page works without it.
(() => {
  "use strict";
  const refreshS = Number(document.body.dataset.refreshS || 2);

  // Live regions: an element with data-refresh="<url>" gets that fragment every refreshS seconds
  // (or every data-refresh-every seconds: a page that is costlier to compute).
  async function refresh(el) {
    if (document.hidden || el.contains(document.activeElement)) return; // never yank focus
    try {
      const answer = await fetch(el.dataset.refresh, { headers: { Accept: "text/html" } });
      if (answer.ok) {
        const html = await answer.text();
        if (html !== el.innerHTML) el.innerHTML = html;
      }
    } catch (_) { /* the console restarting: try again next time */ }
  }
  for (const el of document.querySelectorAll("[data-refresh]")) {
    setInterval(() => refresh(el), (Number(el.dataset.refreshEvery) || refreshS) * 1000);
  }

  // A filter whose <select data-autosubmit> changes applies at once (its button stays for
  // those without scripts).
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }

  // Waterfall: the detail panel without a reload, and arrow keys between rows.
  const data = document.getElementById("span-data");
  if (!data) return;
  const spans = JSON.parse(data.textContent);
  const panel = document.getElementById("detail");
  const links = [...document.querySelectorAll(".span-link")];
  const text = (tag, value, cls) => { const n = document.createElement(tag); n.textContent = value; if (cls) n.className = cls; return n; };

  function show(id, focusPanel) {
    const s = spans[id];
    if (!s) return;
    for (const row of document.querySelectorAll(".row.selected")) row.classList.remove("selected");
    const link = links.find((a) => a.dataset.span === id);
    if (link) link.parentElement.classList.add("selected");
    panel.replaceChildren();
    const h = text("h2", " " + s.name);
    const svc = text("span", s.service, "svc"); svc.style.setProperty("--c", s.colour);
    h.prepend(svc); panel.append(h);
    const facts = document.createElement("dl"); facts.className = "facts";
    for (const [k, v] of s.facts) { facts.append(text("dt", k), text("dd", v)); }
    panel.append(facts, text("h3", "Attributes"));
    const table = document.createElement("table"); table.className = "attrs";
    const body = table.createTBody();
    for (const [k, v] of s.attributes) { const tr = body.insertRow(); const th = text("th", k); th.scope = "row"; tr.append(th, text("td", v)); }
    if (!s.attributes.length) body.insertRow().append(text("td", "none", "muted"));
    panel.append(table, text("h3", "Events"));
    if (s.events.length) {
      const ol = document.createElement("ol"); ol.className = "events";
      for (const e of s.events) { const li = document.createElement("li"); li.append(text("strong", e.name)); for (const [k, v] of e.attributes) { const d = document.createElement("div"); d.append(text("code", k), ": ", text("pre", v)); li.append(d); } ol.append(li); }
      panel.append(ol);
    } else panel.append(text("p", "none", "muted"));
    const query = new URLSearchParams(location.search); query.set("span", id);
    history.replaceState(null, "", "?" + query);
    if (focusPanel) panel.focus();
  }

  links.forEach((a, i) => {
    a.addEventListener("click", (ev) => { ev.preventDefault(); show(a.dataset.span, false); });
    a.addEventListener("keydown", (ev) => {
      const next = ev.key === "ArrowDown" ? links[i + 1] : ev.key === "ArrowUp" ? links[i - 1] : null;
      if (next) { ev.preventDefault(); next.focus(); show(next.dataset.span, false); }
      if (ev.key === "Enter") { ev.preventDefault(); show(a.dataset.span, true); }
    });
  });
})();
