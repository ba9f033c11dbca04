// charrnn's model in the page itself: answers the page's GET /v1/info and POST /v1/sample (JSON lines, as
// `charrnn serve` sends them) from the weights in model.js, so the co-writing page runs with no server and no network.
// The arithmetic is PyTorch's for each cell (gate order i, f, g, o; r, z, n; tanh), in float64 on float32 weights.
"use strict";
(() => {
  const M = window.CHARRNN_MODEL;
  const bytes = Uint8Array.from(atob(M.weights), (c) => c.charCodeAt(0));
  const all = new Float32Array(bytes.buffer);
  const W = {};
  for (const [name, [offset, size]] of Object.entries(M.tensors)) W[name] = all.subarray(offset, offset + size);
  // Ids: EOS (0), the characters (M.vocab), then a labelled model's labels (M.labels): text positions hold only the
  // first T, so draws are over those; the head scores all V.
  const labels = M.labels || [], T = M.vocab.length, V = T + labels.length;
  const { cell, layers, hidden: H, embed: E } = M.config, gates = { lstm: 4, gru: 3, rnn: 1 }[cell];
  const index = new Map(M.vocab.map((c, i) => [c, i]));

  function affine(out, w, b, x, rows, cols) {  // out = b + w x, w (rows, cols) row-major
    for (let r = 0; r < rows; r++) {
      let s = b ? b[r] : 0;
      const o = r * cols;
      for (let k = 0; k < cols; k++) s += w[o + k] * x[k];
      out[r] = s;
    }
    return out;
  }
  const sig = (v) => 1 / (1 + Math.exp(-v));

  // One step: id -> logits; state: per layer {h, c}.
  function step(id, state) {
    let x = W["embed.weight"].subarray(id * E, (id + 1) * E);
    for (let l = 0; l < layers; l++) {
      const inp = l === 0 ? E : H, s = state[l];
      const gi = affine(new Float64Array(gates * H), W[`rnn.weight_ih_l${l}`], W[`rnn.bias_ih_l${l}`], x, gates * H, inp);
      const gh = affine(new Float64Array(gates * H), W[`rnn.weight_hh_l${l}`], W[`rnn.bias_hh_l${l}`], s.h, gates * H, H);
      const h = new Float64Array(H);
      for (let j = 0; j < H; j++) {
        if (cell === "lstm") {
          const i = sig(gi[j] + gh[j]), f = sig(gi[H + j] + gh[H + j]);
          const g = Math.tanh(gi[2 * H + j] + gh[2 * H + j]), o = sig(gi[3 * H + j] + gh[3 * H + j]);
          s.c[j] = f * s.c[j] + i * g;
          h[j] = o * Math.tanh(s.c[j]);
        } else if (cell === "gru") {
          const r = sig(gi[j] + gh[j]), z = sig(gi[H + j] + gh[H + j]);
          const n = Math.tanh(gi[2 * H + j] + r * gh[2 * H + j]);
          h[j] = (1 - z) * n + z * s.h[j];
        } else {
          h[j] = Math.tanh(gi[j] + gh[j]);
        }
      }
      s.h = h;
      x = h;
    }
    return head(x);
  }

  // The output layer: logits (full softmax), or an adaptive softmax's log-probabilities (charrnn/heads.py): the
  // shortlist and one entry per tail cluster in the head, each cluster behind its projection, ranks -> ids.
  const cutoffs = M.config.cutoffs || [];
  function logSoftmax(v) {
    let m = -Infinity, z = 0;
    for (const a of v) m = Math.max(m, a);
    for (const a of v) z += Math.exp(a - m);
    const lz = m + Math.log(z);
    return v.map((a) => a - lz);
  }
  function head(x) {
    if (!cutoffs.length) return affine(new Float64Array(V), W["head.weight"], W["head.bias"], x, V, H);
    const short = cutoffs[0], bounds = [...cutoffs, V], width = short + cutoffs.length;
    const top = logSoftmax(affine(new Float64Array(width), W["head.head.weight"], W["head.head.bias"], x, width, H));
    const byRank = new Float64Array(V);
    byRank.set(top.subarray(0, short));
    cutoffs.forEach((lo, i) => {
      const n = bounds[i + 1] - lo, d = W[`head.tail.${i}.0.weight`].length / H;
      const z = affine(new Float64Array(d), W[`head.tail.${i}.0.weight`], null, x, d, H);
      const lp = logSoftmax(affine(new Float64Array(n), W[`head.tail.${i}.1.weight`], W[`head.tail.${i}.1.bias`], z, n, d));
      for (let k = 0; k < n; k++) byRank[lo + k] = lp[k] + top[short + i];
    });
    const rank = W["head.rank"], out = new Float64Array(V);
    for (let v = 0; v < V; v++) out[v] = byRank[rank[v]];
    return out;
  }

  function fresh() {
    return Array.from({ length: layers }, () => ({ h: new Float64Array(H), c: new Float64Array(H) }));
  }
  function softmax(logits, t) {
    let m = -Infinity;
    for (const v of logits) m = Math.max(m, v);
    const p = Array.from(logits, (v) => Math.exp((v - m) / t));  // a plain array: its map may hold pairs
    const z = p.reduce((a, b) => a + b, 0);
    return p.map((v) => v / z);
  }
  function random(seed) {  // mulberry32: a seeded page repeats itself (its draws are not torch's)
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  // The draw from `shown`, the model's probabilities at the temperature (at 1 for greedy: the same argmax).
  function draw(shown, req, rand, first) {
    let p = shown.slice();
    if (first) p[0] = 0;  // no empty documents: EOS is not the first draw without a prime
    if (req.greedy) return p.indexOf(Math.max(...p));
    let total = p.reduce((a, b) => a + b, 0);
    p = p.map((q) => q / total);
    if (req.top_p && req.top_p < 1) {
      const order = p.map((q, i) => [q, i]).sort((a, b) => b[0] - a[0]);
      let mass = 0;
      const keep = new Set();
      for (const [q, i] of order) { if (mass >= req.top_p) break; keep.add(i); mass += q; }
      p = p.map((q, i) => (keep.has(i) ? q : 0));
    }
    total = p.reduce((a, b) => a + b, 0);
    let u = rand() * total;
    for (let i = 0; i < p.length; i++) { u -= p[i]; if (u < 0 && p[i] > 0) return i; }
    return p.findLastIndex((q) => q > 0);
  }

  // Read EOS, the label (its id T + j) and the prime: [logits after them (text ids), state, -log P(label, prime)].
  function read(j, prime) {
    const state = fresh();
    let logits = step(0, state), nats = 0;
    const ids = j === null ? prime : [T + j, ...prime];
    for (const id of ids) {
      if (j !== null) nats -= logSoftmax(logits)[id];
      logits = step(id, state);
    }
    return [logits.subarray(0, T), state, nats];
  }
  // As charrnn's sample.start: the label asked for, or one drawn from P(label | prime) (the likeliest with greedy).
  function begin(req, rand) {
    const prime = Array.from(req.prime, (ch) => index.get(ch));
    if (!labels.length || req.label) return [...read(req.label ? labels.indexOf(req.label) : null, prime), req.label];
    const each = labels.map((_, j) => read(j, prime));
    const p = softmax(each.map(([, , nats]) => -nats), 1);
    const j = req.greedy ? p.indexOf(Math.max(...p)) : draw(p, { top_p: 1 }, rand, false);
    return [each[j][0], each[j][1], each[j][2], labels[j]];
  }

  async function* sample(req, signal) {
    const rand = random(req.seed);
    let [logits, state, , label] = begin(req, rand);
    yield { type: "start", seed: req.seed, n: 1, prime: req.prime };
    const stops = req.stop ? [].concat(req.stop) : [];
    let made = 0, held = [], ended = "length", last = performance.now();
    const out = [], flush = (items) => { for (const it of items) out.push(it); made += items.length; };
    for (let k = 0; k < req.length; k++) {
      if (signal && signal.aborted) return;
      const shown = softmax(logits, req.greedy ? 1 : req.temperature);  // once a step: reported, and drawn from
      const id = draw(shown, req, rand, k === 0 && !req.prime);
      if (id === 0) { flush(held); held = []; ended = "eos"; break; }
      const top = !req.top ? [] : shown.map((q, i) => [q, i]).sort((a, b) => b[0] - a[0]).slice(0, req.top)
        .map(([q, i]) => [M.vocab[i], q]);
      held.push({ ch: M.vocab[id], p: shown[id], top });
      const pending = held.map((x) => x.ch).join("");
      const hit = stops.map((s) => [pending.indexOf(s), s]).filter(([at]) => at >= 0).sort((a, b) => a[0] - b[0])[0];
      if (hit) { flush(held.slice(0, hit[0])); held = []; ended = "stop"; break; }
      let tail = 0;  // hold back what could begin a stop
      for (let n = Math.min(pending.length, Math.max(0, ...stops.map((s) => s.length - 1))); n > 0; n--) {
        if (stops.some((s) => s.startsWith(pending.slice(-n)))) { tail = n; break; }
      }
      flush(held.slice(0, held.length - tail));
      held = held.slice(held.length - tail);
      logits = step(id, state).subarray(0, T);  // a label never comes mid-text
      if (out.length && performance.now() - last > 30) {  // a slice's characters, then let the page draw
        yield textEvent(out.splice(0));
        await new Promise((r) => setTimeout(r, 0));
        last = performance.now();
      }
    }
    if (ended === "length") flush(held);
    if (out.length) yield textEvent(out.splice(0));
    yield { type: "end", i: 0, ended };
    yield { type: "done", seed: req.seed, prime: req.prime, samples: [{ ended, ...(label ? { label } : {}) }], characters: made };
  }
  function textEvent(items) {
    return { type: "text", i: 0, text: items.map((x) => x.ch).join(""), p: items.map((x) => x.p), top: items.map((x) => x.top) };
  }

  function lines(req, signal) {
    const encoder = new TextEncoder(), events = sample(req, signal);
    return new ReadableStream({
      async pull(controller) {
        const { value, done } = await events.next();
        if (done) controller.close();
        else controller.enqueue(encoder.encode(JSON.stringify(value) + "\n"));
      },
    });
  }

  const served = window.fetch.bind(window);
  window.fetch = async (url, options = {}) => {
    const path = new URL(url, "http://page/").pathname;
    if (path === "/v1/info") {
      return new Response(JSON.stringify({ checkpoint: M.name, summary: M.summary, labels }), { headers: { "content-type": "application/json" } });
    }
    if (path !== "/v1/sample") return served(url, options);
    const body = JSON.parse(options.body || "{}");
    const req = { prime: body.prime || "", length: body.length ?? 500, temperature: body.temperature ?? 1, top_p: body.top_p,
                  greedy: !!body.greedy, stop: body.stop, top: body.top || 0,
                  seed: body.seed ?? Math.floor(Math.random() * 2 ** 31), label: body.label };
    if (req.label !== undefined && !labels.includes(req.label)) {
      const known = labels.length ? `one of the model's labels: ${labels.join(", ")}` : "none: this model was trained without labels";
      return new Response(JSON.stringify({ error: `label ${JSON.stringify(req.label)} is not ${known}`, field: "label" }),
                          { status: 400, headers: { "content-type": "application/json" } });
    }
    const unknown = Array.from(req.prime).filter((c) => !index.has(c));
    if (unknown.length) {
      return new Response(JSON.stringify({ error: `prime has characters not in the model's vocabulary: ${[...new Set(unknown)].join(" ")}`, field: "prime" }),
                          { status: 400, headers: { "content-type": "application/json" } });
    }
    return new Response(lines(req, options.signal), { headers: { "content-type": "application/x-ndjson" } });
  };
  window.charrnnStep = { step, fresh, vocab: M.vocab, labels };  // for tests and the curious
})();
