// One model's page: reads the model's metadata, draws a form for its task, and calls
// POST /v1/models/NAME:predict (columnar format) with what was typed or uploaded.
"use strict";

const NAME = decodeURIComponent(location.pathname.split("/").pop());
const $ = (id) => document.getElementById(id);
let SIGNATURES = {};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v; else if (k === "style") node.style.cssText = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

async function getJSON(path, body) {
  const init = body === undefined ? {} :
    { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, init);
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}

// -> {output name: value}, whatever the number of outputs
async function predict(signature, inputs) {
  const answer = await getJSON(`/v1/models/${encodeURIComponent(NAME)}:predict`, { signature_name: signature, inputs });
  const names = Object.keys(SIGNATURES[signature].outputs);
  return names.length === 1 ? { [names[0]]: answer.outputs } : answer.outputs;
}

function form(fields, label, onRun) {
  const button = el("button", { id: "run", type: "button", text: label });
  $("form").append(...fields, button);
  button.addEventListener("click", async () => {
    $("error").textContent = "";
    button.disabled = true;
    try { await onRun(); } catch (e) { $("error").textContent = e.message; } finally { button.disabled = false; }
  });
}

function textInput(placeholder, value = "") {
  return el("input", { id: "input", type: "text", placeholder, value });
}

function show(...nodes) { $("result").replaceChildren(...nodes); }

function heatmap(rows, cols, weights) {  // weights[row][col] in 0..1
  const head = el("tr", {}, el("th"), ...cols.map((c) => el("th", { text: c })));
  const body = rows.map((r, i) => el("tr", {}, el("th", { text: r }), ...cols.map((c, j) => {
    const w = weights[i][j];
    return el("td", { title: w.toFixed(3), style: `background: rgba(74, 144, 217, ${w})` });
  })));
  return el("table", { class: "heat", id: "heatmap" }, el("thead", {}, head), el("tbody", {}, ...body));
}

// -- one function per task -------------------------------------------------------------------------
const TASKS = {
  sentiment(meta) {
    const input = textInput("a sentence", "a gripping, beautiful film");
    form([input], "Classify", async () => {
      const out = await predict("serving_default", { text: [input.value] });
      const probs = out.probabilities[0];
      show(el("div", { class: "label", id: "label", text: out.label[0] }),
        ...(meta.labels || probs.map((_, i) => `class ${i}`)).map((name, i) => el("div", { class: "bar" },
          el("span", { text: name }), el("div", { style: `width: ${probs[i] * 20}rem` }),
          el("code", { class: "probability", text: probs[i].toFixed(3) }))));
    });
  },

  pos() {
    const input = textInput("a sentence", "The old man saw the boat on the river .");
    form([input], "Tag", async () => {
      const out = await predict("serving_default", { text: [input.value] });
      const n = out.lengths[0];
      show(el("div", { class: "tagged", id: "tagged" }, ...out.tokens[0].slice(0, n).map((word, i) =>
        el("div", {}, el("span", { class: out.in_vocabulary[0][i] ? "" : "oov", text: word }),
          el("span", { class: "tag", text: out.tags[0][i] })))));
    });
  },

  translation(meta) {
    const input = textInput("a sentence", "i am cold .");
    const beam = (meta.decoding && meta.decoding.beam_width) || 1;
    form([input], "Translate", async () => {
      const out = await predict("attention", { text: [input.value], beam_width: beam });
      const src = out.source_tokens[0].slice(0, out.source_lengths[0]);
      const tgt = out.output_tokens[0].slice(0, out.output_lengths[0]);
      const weights = out.attention[0].slice(0, tgt.length).map((row) => row.slice(0, src.length));
      show(el("div", { class: "label", id: "translation", text: out.translation[0] }),
        el("p", { class: "muted", text: "attention: each output word (rows) over the source words (columns)" }),
        heatmap(tgt, src, weights));
    });
  },

  captioning() {
    const file = el("input", { id: "input", type: "file", accept: "image/*" });
    form([file], "Caption", async () => {
      if (!file.files.length) throw new Error("choose an image first");
      const bytes = new Uint8Array(await file.files[0].arrayBuffer());
      let binary = "";
      for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      const out = await predict("attention", { image: [{ b64: btoa(binary) }] });
      if (!out.valid[0]) throw new Error("the model could not decode this image");
      const words = out.words[0].slice(0, out.length[0]);
      const img = el("img", { src: URL.createObjectURL(file.files[0]), style: "max-width: 24rem; display: block" });
      const canvas = el("canvas");
      const buttons = words.map((w, i) => el("button", { type: "button", text: w }));
      const draw = (i) => {
        buttons.forEach((b, j) => b.classList.toggle("on", i === j));
        const grid = out.attention[0][i], gh = grid.length, gw = grid[0].length;
        canvas.width = img.width; canvas.height = img.height;
        const ctx = canvas.getContext("2d"), top = Math.max(...grid.flat()) || 1;
        ctx.clearRect(0, 0, canvas.width, canvas.height);
        grid.forEach((row, y) => row.forEach((v, x) => {
          ctx.fillStyle = `rgba(0, 0, 0, ${0.75 * (1 - v / top)})`;
          ctx.fillRect(x * img.width / gw, y * img.height / gh, img.width / gw + 1, img.height / gh + 1);
        }));
      };
      buttons.forEach((b, i) => b.addEventListener("click", () => draw(i)));
      show(el("div", { class: "label", id: "caption", text: out.caption[0] }),
        el("p", { class: "muted", text: "attention over the image for each word (click a word)" }),
        el("div", { class: "words" }, ...buttons), el("div", { class: "stack" }, img, canvas));
      if (img.complete) draw(0); else img.addEventListener("load", () => words.length && draw(0));
    });
  },

  char_lm() {
    const prime = textInput("text to continue", "ROMEO:\n");
    const length = el("input", { id: "length", type: "number", value: 300, min: 1 });
    const temperature = el("input", { id: "temperature", type: "number", value: 0.8, step: 0.1, min: 0 });
    const fields = [prime, el("label", { class: "inline" }, "characters ", length),
      el("label", { class: "inline" }, "temperature ", temperature)];
    form(fields, "Generate", async () => {
      const output = el("div", { id: "generated" });
      show(output);
      output.textContent = prime.value;
      const total = Number(length.value), chunk = 25, seed = Math.floor(Math.random() * 1e9);
      for (let done = 0, step = 0; done < total; step++) {  // a few characters a call: the text appears as it comes
        const n = Math.min(chunk, total - done);
        const out = await predict("serving_default", { prime: [output.textContent], length: n,
          temperature: Number(temperature.value), top_k: 0, top_p: 1.0, seed: seed + step });
        if (!out.length[0]) break;
        output.textContent += out.text[0];
        done += out.length[0];
      }
    });
  },

  forecasting(meta) {
    const features = meta.features || ["value"], window = meta.window || 12;
    const target = Math.max(0, features.indexOf(meta.target));
    const mean = (meta.encoding && meta.encoding.mean) || features.map(() => 0);
    const std = (meta.encoding && meta.encoding.std) || features.map(() => 1);
    const example = Array.from({ length: window }, (_, t) => features.map((f, j) =>
      (f.includes("=") ? mean[j] : mean[j] + std[j] * Math.sin(t / 2)).toFixed(2)).join(", ")).join("\n");
    const input = el("textarea", { id: "input", class: "mono", rows: Math.min(window, 14) });
    input.value = example;
    form([el("p", { class: "muted", text: `${window} rows of: ${features.join(", ")}` }), input], "Forecast",
      async () => {
        const rows = input.value.trim().split("\n").map((line) => line.split(/[,\s]+/).filter(Boolean).map(Number));
        const out = await predict("serving_default", { window: [rows] });
        const past = rows.map((r) => r[target]), future = out.forecast[0];
        show(el("div", { class: "label", id: "forecast", text: future.map((v) => v.toFixed(2)).join(", ") }),
          plot(past, future));
      });
  },
};

function plot(past, future) {
  const all = [...past, ...future], w = 640, h = 240, lo = Math.min(...all), hi = Math.max(...all) || 1;
  const x = (i) => 20 + i * (w - 40) / Math.max(1, all.length - 1);
  const y = (v) => h - 20 - (v - lo) * (h - 40) / ((hi - lo) || 1);
  const line = (values, offset) => values.map((v, i) => `${x(i + offset)},${y(v)}`).join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", w); svg.setAttribute("height", h); svg.setAttribute("id", "plot");
  svg.innerHTML = `<polyline class="window" points="${line(past, 0)}"/>` +
    `<polyline class="forecast" points="${line([past[past.length - 1], ...future], past.length - 1)}"/>`;
  return svg;
}

// A task this page does not know: a columnar request to edit by hand.
function generic(meta) {
  const sig = SIGNATURES.serving_default ? "serving_default" : Object.keys(SIGNATURES)[0];
  const input = el("textarea", { id: "input", class: "mono", rows: 6 });
  input.value = JSON.stringify(Object.fromEntries(Object.keys(SIGNATURES[sig].inputs).map((k) => [k, []])), null, 1);
  form([input], "Predict", async () => {
    const out = await predict(sig, JSON.parse(input.value));
    show(el("pre", { id: "output", text: JSON.stringify(out, null, 1) }));
  });
}

async function main() {
  document.title = `${NAME} · seqapps`;
  $("name").textContent = NAME;
  try {
    const [status, metadata] = await Promise.all([getJSON(`/v1/models/${encodeURIComponent(NAME)}`),
      getJSON(`/v1/models/${encodeURIComponent(NAME)}/metadata`)]);
    SIGNATURES = metadata.metadata.signature_def.signature_def;
    const meta = metadata.metadata.seqapps || {};
    const version = status.model_version_status.find((s) => s.state === "AVAILABLE");
    $("about").textContent = `${meta.task || "model"} · version ${version ? version.version : "?"} · ` +
      `${meta.description || ""}`;
    (TASKS[meta.task] || generic)(meta);
  } catch (e) {
    $("error").textContent = e.message;
  }
}

main();
