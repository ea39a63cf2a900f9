// The page: files in, one POST /v1/upscale each (two at a time), progress, before/after, downloads.
"use strict";

const $ = (id) => document.getElementById(id);
const results = [];   // {name, blob} of each finished file, for the zip
const queue = [];
let running = 0;
const PARALLEL = 2;   // the server batches across requests; two keep it busy without hoarding its queue

const EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"};

function authHeaders() {
  const token = $("token").value.trim() || localStorage.getItem("srgan-token") || "";
  return token ? {Authorization: "Bearer " + token} : {};
}

function showNotice(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

async function loadModels() {
  const answer = await fetch("v1/models", {headers: authHeaders()});
  if (answer.status === 401) {
    $("token-label").hidden = false;
    showNotice("This server needs an API token: enter it above.");
    return;
  }
  const body = await answer.json();
  const select = $("model");
  select.replaceChildren();
  for (const model of body.models) {
    const option = document.createElement("option");
    option.value = model.name;
    option.textContent = `${model.name} (×${model.scale}, ${model.backend} ${model.precision})`;
    option.selected = model.default;
    select.append(option);
  }
  showNotice("");
}

function errorLine(xhr) {
  try {
    return JSON.parse(xhr.responseText).error || `HTTP ${xhr.status}`;
  } catch (_) {
    return `HTTP ${xhr.status}: ${xhr.statusText || "no answer"}`;
  }
}

function resultName(name, type) {
  const stem = name.replace(/\.[^.]*$/, "");
  return `${stem}_x4.${EXTENSIONS[type] || "png"}`;
}

function addFiles(files) {
  for (const file of files) {
    const row = $("row").content.firstElementChild.cloneNode(true);
    row.querySelector(".name").textContent = file.name;
    row.querySelector(".status").textContent = "waiting";
    $("results").append(row);
    queue.push({file, row, options: currentOptions()});
  }
  pump();
}

function currentOptions() {
  const query = new URLSearchParams();
  for (const [key, id] of [["model", "model"], ["outscale", "scale"], ["format", "format"]]) {
    if ($(id).value) query.set(key, $(id).value);
  }
  return query;
}

function pump() {
  while (running < PARALLEL && queue.length) {
    running++;
    upscale(queue.shift()).finally(() => { running--; pump(); });
  }
}

function upscale({file, row, options}) {
  const status = row.querySelector(".status");
  const progress = row.querySelector(".progress");
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "v1/upscale?" + options.toString());
    for (const [key, value] of Object.entries(authHeaders())) xhr.setRequestHeader(key, value);
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    xhr.responseType = "blob";
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) progress.value = 30 * event.loaded / event.total;
      status.textContent = "uploading";
    };
    xhr.upload.onload = () => { progress.removeAttribute("value"); status.textContent = "upscaling"; };
    xhr.onload = async () => {
      row.classList.add("done");
      if (xhr.status !== 200) {
        // The error body came back as a blob: read it as text for the one-line JSON error.
        const text = await xhr.response.text();
        showError(row, errorLine({status: xhr.status, statusText: xhr.statusText, responseText: text}));
        return resolve();
      }
      finished(row, file, xhr.response);
      resolve();
    };
    xhr.onerror = () => { row.classList.add("done"); showError(row, "the server could not be reached"); resolve(); };
    xhr.send(file);
  });
}

function showError(row, line) {
  row.querySelector(".status").textContent = "failed";
  const error = row.querySelector(".error");
  error.textContent = line;
  error.hidden = false;
}

function finished(row, file, blob) {
  const name = resultName(file.name, blob.type);
  const url = URL.createObjectURL(blob);
  const compare = row.querySelector(".compare");
  const after = row.querySelector(".after");
  after.onload = () => {
    row.querySelector(".status").textContent = `done: ${after.naturalWidth}×${after.naturalHeight}, ` +
      `${(blob.size / 1024).toFixed(0)} KiB`;
  };
  after.src = url;
  row.querySelector(".before").src = URL.createObjectURL(file);
  const slider = row.querySelector(".slider");
  slider.oninput = () => {
    row.querySelector(".before").style.clipPath = `inset(0 ${100 - slider.value}% 0 0)`;
    row.querySelector(".divider").style.left = `${slider.value}%`;
  };
  compare.hidden = false;
  const link = row.querySelector(".download");
  link.href = url;
  link.download = name;
  link.hidden = false;
  results.push({name, blob});
  $("zip").disabled = false;
}

async function downloadZip() {
  const files = [];
  const used = new Set();
  for (const {name, blob} of results) {
    let unique = name;
    for (let n = 2; used.has(unique); n++) unique = name.replace(/(\.[^.]*)$/, `_${n}$1`);
    used.add(unique);
    files.push({name: unique, bytes: new Uint8Array(await blob.arrayBuffer())});
  }
  const link = document.createElement("a");
  link.href = URL.createObjectURL(makeZip(files));
  link.download = "srgan_fast_results.zip";
  document.body.append(link);
  link.click();
  link.remove();
}

const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  addFiles([...event.dataTransfer.files].filter((file) => file.type.startsWith("image/") || !file.type));
});
$("files").addEventListener("change", (event) => { addFiles([...event.target.files]); event.target.value = ""; });
$("zip").addEventListener("click", downloadZip);
$("token").addEventListener("change", () => { localStorage.setItem("srgan-token", $("token").value.trim()); loadModels(); });
loadModels();
