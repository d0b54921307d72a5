/* The mvcap preview page.

   Data comes as script files because browsers refuse fetch() on file:// URLs: index.js sets
   window.MVCAP_INDEX (one compact row per object), and each chunk file calls mvcapChunk(n, objects)
   with the details of chunk_size consecutive objects. Filters and paging run over the index; only
   the chunks of the objects on the page are loaded. The address hash keeps page and filters.

   Every string from the dataset goes into the page as textContent, never as markup. */
"use strict";

(function () {
  const base = document.currentScript.dataset.base;
  const data = window.MVCAP_INDEX;
  const $ = (id) => document.getElementById(id);
  const count = new Intl.NumberFormat("en-US");

  // Index row fields, in the order of data.fields.
  const KEY = 0, CATEGORY = 1, VIEWS = 2, CAPTIONS = 3, FAILED = 4, TRIES = 5;
  const KEPT_CHUNKS = 64; // chunks kept in memory beyond those of the current page

  const chunks = new Map(); // chunk number -> object details, oldest first
  const loading = new Map(); // chunk number -> promise
  let renders = 0;
  let current = { page: 1, pages: 1 };
  let cache = { signature: null, rows: [] };

  window.mvcapChunk = (number, objects) => chunks.set(number, objects);

  // Element helpers -------------------------------------------------------------------------
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function badge(text, kind, title) {
    const node = el("span", "badge" + (kind ? " " + kind : ""), text);
    if (title) node.title = title;
    return node;
  }

  const plural = (n, word) => `${count.format(n)} ${word}${n === 1 ? "" : "s"}`;
  const degrees = (value) => `${Number(value).toFixed(1)}°`;

  // Chunks ----------------------------------------------------------------------------------
  function chunkPath(number) {
    const folder = String(Math.floor(number / 1000)).padStart(3, "0");
    return `${base}/chunks/${folder}/chunk-${String(number).padStart(5, "0")}.js`;
  }

  function loadChunk(number) {
    if (chunks.has(number)) return Promise.resolve();
    if (!loading.has(number)) {
      loading.set(number, new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = chunkPath(number);
        script.onload = () => {
          loading.delete(number);
          script.remove();
          chunks.has(number) ? resolve() : reject(new Error(`${chunkPath(number)} holds no data`));
        };
        script.onerror = () => {
          loading.delete(number);
          script.remove();
          reject(new Error(`could not load ${chunkPath(number)}`));
        };
        document.head.append(script);
      }));
    }
    return loading.get(number);
  }

  function forgetChunks(keep) {
    for (const number of chunks.keys()) {
      if (chunks.size <= keep.size + KEPT_CHUNKS) break;
      if (!keep.has(number)) chunks.delete(number);
    }
  }

  // State in the address hash ---------------------------------------------------------------
  function readState() {
    const params = new URLSearchParams(location.hash.slice(1));
    return {
      page: Math.max(1, parseInt(params.get("page"), 10) || 1),
      category: params.get("category") || "",
      status: params.get("status") || "",
      q: params.get("q") || "",
    };
  }

  function hashOf(state) {
    const params = new URLSearchParams({ page: String(state.page) });
    for (const name of ["category", "status", "q"]) if (state[name]) params.set(name, state[name]);
    return "#" + params.toString();
  }

  function go(changes, replace) {
    const hash = hashOf({ ...readState(), ...changes });
    if (replace) {
      history.replaceState(null, "", hash);
      render();
    } else if (hash !== location.hash) {
      location.hash = hash; // hashchange renders
    } else {
      render();
    }
  }

  // Filters ---------------------------------------------------------------------------------
  const stageBit = (stage) => (data.stages.includes(stage) ? 1 << data.stages.indexOf(stage) : 0);

  const STATUS = [
    ["", "all", () => true],
    ["failed", "any failure", (o) => o[FAILED] !== 0],
    ["ok", "no failures", (o) => o[FAILED] === 0],
    ["no-views", "no views", (o) => o[VIEWS] === 0],
    ["uncaptioned", "views without captions", (o) => o[VIEWS] > 0 && o[CAPTIONS] === 0],
    ["retried", "captions retried by the gates", (o) => o[TRIES] > 1],
  ];

  function statusTest(status) {
    if (status.startsWith("failed:")) {
      const bit = stageBit(status.slice("failed:".length));
      return (o) => (o[FAILED] & bit) !== 0;
    }
    const known = STATUS.find(([value]) => value === status);
    return known ? known[2] : () => true;
  }

  function statusOptions() {
    const options = STATUS.map(([value, label, test]) => [value, label, data.objects.filter(test).length]);
    const failedStages = data.stages
      .map((stage) => [stage, data.objects.filter((o) => o[FAILED] & stageBit(stage)).length])
      .filter(([, n]) => n > 0)
      .map(([stage, n]) => [`failed:${stage}`, `failed at ${stage}`, n]);
    options.splice(2, 0, ...failedStages);
    return options;
  }

  function filtered(state) {
    const signature = JSON.stringify([state.category, state.status, state.q]);
    if (cache.signature === signature) return cache.rows;
    const category = state.category ? data.categories.indexOf(state.category) : null;
    const test = statusTest(state.status);
    const q = state.q.toLowerCase();
    const rows = [];
    data.objects.forEach((o, i) => {
      if (category !== null && o[CATEGORY] !== category) return;
      if (!test(o)) return;
      if (q && !o[KEY].toLowerCase().includes(q)) return;
      rows.push(i);
    });
    cache = { signature, rows };
    return rows;
  }

  // One object ------------------------------------------------------------------------------
  function objectCard(d, row) {
    const card = el("li", "object" + (d.failures.length ? " has-failures" : ""));
    card.dataset.key = d.key;
    card.dataset.category = d.category;
    card.append(objectHead(d, row));
    if (d.failures.length) card.append(failureList(d.failures));
    card.append(d.views.length ? viewGrid(d) : el("p", "empty", "no views"));
    const orphans = d.captions.filter((c) => !d.views.some((v) => v.index === c.view));
    if (orphans.length) card.append(orphanCaptions(orphans));
    if (d.producer || d.prompts.length) card.append(about(d));
    return card;
  }

  function objectHead(d, row) {
    const head = el("header", "object-head");
    head.append(el("h2", "key", d.key), badge(d.category, "category", "category"));
    head.append(badge(plural(d.views.length, "view")));
    head.append(badge(plural(d.captions.length, "caption"), d.views.length && !d.captions.length ? "warn" : ""));
    if (row[TRIES] > 1) head.append(badge(`up to ${row[TRIES]} tries`, "warn", "some captions passed the quality gates only after a retry"));
    for (const stage of new Set(d.failures.map((f) => f.stage))) head.append(badge(`${stage} failed`, "bad"));
    return head;
  }

  function failureList(failures) {
    const list = el("ul", "failures");
    for (const f of failures) {
      const item = el("li", "failure");
      item.dataset.stage = f.stage;
      const line = el("div", "failure-head");
      line.append(el("span", "stage", `${f.stage} failed`), el("code", "reason", f.reason));
      if (f.time) line.append(el("time", "when", f.time));
      item.append(line, el("pre", "detail", f.detail));
      list.append(item);
    }
    return list;
  }

  function viewGrid(d) {
    const grid = el("div", "views");
    const captions = new Map(d.captions.map((c) => [c.view, c]));
    d.views.forEach((view, position) => grid.append(viewTile(d, view, position, captions.get(view.index))));
    return grid;
  }

  function viewTile(d, view, position, caption) {
    const figure = el("figure", "view");
    figure.dataset.view = view.index;
    figure.dataset.azimuth = view.azimuth;
    figure.dataset.elevation = view.elevation;
    figure.append(spriteFrame(d, view, position));
    const label = el("figcaption");
    const meta = el("div", "view-meta");
    meta.title = `${view.file}, ${view.width}×${view.height} px`;
    const angles = el("span", "angles");
    angles.append(el("span", null, `az ${degrees(view.azimuth)}`), " · ", el("span", null, `el ${degrees(view.elevation)}`));
    meta.append(angles);
    if (caption) meta.append(triesBadge(caption.tries));
    label.append(meta, caption ? captionText(caption) : el("p", "caption missing", "no caption"));
    figure.append(label);
    return figure;
  }

  function spriteFrame(d, view, position) {
    // The object's sprite, scaled so one cell fills the frame and moved to this view's cell.
    const frame = el("div", "frame");
    if (!d.sprite) return frame;
    const { file, columns, rows } = d.sprite;
    const image = document.createElement("img");
    image.src = file;
    image.alt = `${d.key}, view ${view.index}`;
    image.style.width = `${columns * 100}%`;
    image.style.height = `${rows * 100}%`;
    image.style.left = `${-(position % columns) * 100}%`;
    image.style.top = `${-Math.floor(position / columns) * 100}%`;
    frame.append(image);
    return frame;
  }

  function triesBadge(tries) {
    const text = tries === 1 ? "passed 1st try" : `${tries} tries`;
    return badge(text, tries === 1 ? "tries ok" : "tries warn", `asked ${plural(tries, "time")} before the caption passed the quality gates`);
  }

  function captionText(caption) {
    const text = el("p", "caption", caption.text);
    text.title = `${caption.prompt_name} prompt, ${caption.backend}: ${caption.model}`;
    return text;
  }

  function orphanCaptions(captions) {
    const box = el("div", "orphans");
    box.append(el("h3", null, "captions of views not in the views manifest"));
    for (const c of captions) {
      const line = el("p", "caption");
      line.dataset.view = c.view;
      line.textContent = `view ${c.view}: ${c.text}`;
      box.append(line);
    }
    return box;
  }

  function about(d) {
    const box = el("details", "about");
    box.append(el("summary", null, "producer, prompts and models"));
    const list = el("dl");
    const add = (term, value) => list.append(el("dt", null, term), el("dd", null, value));
    if (d.producer) add("views", d.producer);
    const models = new Set(d.captions.map((c) => `${c.backend}: ${c.model}`));
    if (models.size) add("captioned by", [...models].join(", "));
    d.prompts.forEach((prompt, i) => {
      const names = new Set(d.captions.filter((c) => c.prompt === i).map((c) => c.prompt_name));
      add(`prompt (${[...names].join(", ")})`, prompt);
    });
    box.append(list);
    return box;
  }

  // Page ------------------------------------------------------------------------------------
  function pager(nav, page, pages, state) {
    nav.replaceChildren();
    if (pages <= 1) return;
    const link = (target, text, className) => {
      if (target < 1 || target > pages || target === page) {
        const span = el("span", className + (target === page ? " current" : " disabled"), text);
        if (target === page) span.setAttribute("aria-current", "page");
        return span;
      }
      const a = el("a", className, text);
      a.href = hashOf({ ...state, page: target });
      return a;
    };
    nav.append(link(page - 1, "‹ prev", "prev"));
    for (const target of pageNumbers(page, pages)) nav.append(target === null ? el("span", "gap", "…") : link(target, count.format(target), "number"));
    nav.append(link(page + 1, "next ›", "next"));
  }

  function pageNumbers(page, pages) {
    const wanted = new Set([1, pages]);
    for (let p = page - 2; p <= page + 2; p++) if (p >= 1 && p <= pages) wanted.add(p);
    const numbers = [];
    let previous = 0;
    for (const p of [...wanted].sort((a, b) => a - b)) {
      if (p - previous > 1) numbers.push(null);
      numbers.push(p);
      previous = p;
    }
    return numbers;
  }

  function showing(first, last, matched, page, pages) {
    if (!matched) return "no objects match these filters";
    const all = data.objects.length;
    const of = matched === all ? `${count.format(all)} objects` : `${count.format(matched)} matching objects (of ${count.format(all)})`;
    return `showing ${count.format(first)}–${count.format(last)} of ${of} · page ${count.format(page)} of ${count.format(pages)}`;
  }

  function message(text) {
    $("message").textContent = text;
    $("message").hidden = !text;
  }

  async function render() {
    const token = ++renders;
    const state = readState();
    syncControls(state);
    document.body.dataset.state = "loading";
    const rows = filtered(state);
    const pages = Math.max(1, Math.ceil(rows.length / data.page_size));
    const page = Math.min(state.page, pages);
    const shown = rows.slice((page - 1) * data.page_size, page * data.page_size);
    const needed = new Set(shown.map((i) => Math.floor(i / data.chunk_size)));
    try {
      await Promise.all([...needed].map(loadChunk));
    } catch (error) {
      if (token !== renders) return;
      message(`${error.message}: the preview folder is incomplete; run mvcap preview again.`);
      document.body.dataset.state = "error";
      return;
    }
    if (token !== renders) return; // a newer render started while the chunks loaded
    const details = shown.map((i) => chunks.get(Math.floor(i / data.chunk_size))[i % data.chunk_size]);
    forgetChunks(needed);
    message("");
    current = { page, pages };
    $("showing").textContent = showing((page - 1) * data.page_size + 1, (page - 1) * data.page_size + shown.length, rows.length, page, pages);
    pager($("pager-top"), page, pages, state);
    pager($("pager-bottom"), page, pages, state);
    $("objects").replaceChildren(...details.map((d, n) => objectCard(d, data.objects[shown[n]])));
    $("objects").start = (page - 1) * data.page_size + 1;
    document.body.dataset.state = "ready";
    document.body.dataset.renders = String(token);
  }

  // Controls --------------------------------------------------------------------------------
  function fillSelect(select, options) {
    for (const [value, label, n] of options) {
      const option = el("option", null, `${label} (${count.format(n)})`);
      option.value = value;
      select.append(option);
    }
  }

  function setUpControls() {
    const perCategory = new Array(data.categories.length).fill(0);
    for (const o of data.objects) perCategory[o[CATEGORY]] += 1;
    const categories = data.categories.map((name, i) => [name, name || "(none)", perCategory[i]]);
    categories.sort((a, b) => a[0].localeCompare(b[0]));
    $("category").firstElementChild.textContent = `all (${count.format(data.objects.length)})`;
    fillSelect($("category"), categories);
    fillSelect($("status"), statusOptions());
    $("category").addEventListener("change", (e) => go({ category: e.target.value, page: 1 }));
    $("status").addEventListener("change", (e) => go({ status: e.target.value, page: 1 }));
    let typing = null;
    $("search").addEventListener("input", (e) => {
      clearTimeout(typing);
      typing = setTimeout(() => go({ q: e.target.value.trim(), page: 1 }, true), 200);
    });
    $("filters").addEventListener("submit", (e) => e.preventDefault());
    window.addEventListener("hashchange", render);
    document.addEventListener("keydown", pageKeys);
  }

  function pageKeys(event) {
    if (event.altKey || event.ctrlKey || event.metaKey || event.target.closest("input, select, textarea")) return;
    const step = { ArrowLeft: -1, ArrowRight: 1 }[event.key];
    const target = current.page + (step || 0);
    if (step && target >= 1 && target <= current.pages) go({ page: target });
  }

  function syncControls(state) {
    $("category").value = state.category;
    $("status").value = state.status;
    if (document.activeElement !== $("search")) $("search").value = state.q;
  }

  function summarise() {
    const objects = data.objects;
    const withViews = objects.filter((o) => o[VIEWS] > 0).length;
    const captioned = objects.filter((o) => o[CAPTIONS] > 0).length;
    const failed = objects.filter((o) => o[FAILED] !== 0).length;
    $("root").textContent = data.root;
    $("root").title = `generated ${data.generated}`;
    $("totals").textContent = `${plural(objects.length, "object")} · ${count.format(withViews)} with views · ${count.format(captioned)} captioned · ${count.format(failed)} with failures`;
  }

  if (!data) {
    message(`${base}/index.js did not load: the preview folder is incomplete; run mvcap preview again.`);
    document.body.dataset.state = "error";
    return;
  }
  document.documentElement.style.setProperty("--tile", `${data.thumb_size}px`);
  summarise();
  setUpControls();
  render();
})();
