// The EdgeScribe page: live captions from the microphone over the Vosk-protocol WebSocket, and file
// transcription through the OpenAI-compatible endpoint. Everything it loads comes from this server.
"use strict";

const $ = (id) => document.getElementById(id);
const live = { ws: null, ctx: null, media: null, node: null };

function setStatus(element, state, text) {
  element.dataset.state = state;
  element.textContent = text;
}

function streamUrl() {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/stream";
}

// Web Audio gives floats in [-1, 1]; the stream protocol takes 16-bit little-endian PCM
// (Int16Array is little-endian on every platform a browser runs on).
function toPcm16(samples) {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    out[i] = s < 0 ? s * 0x8000 : s * 0x7fff;
  }
  return out.buffer;
}

function formatTimes(words) {
  return words.map((w) => `${w.word} ${w.start.toFixed(2)}-${w.end.toFixed(2)}s`).join(", ");
}

function onStreamMessage(message) {
  if (message.error) {
    setStatus($("status"), "error", message.error.message);
    return;
  }
  if ("partial" in message) {
    $("partial").textContent = message.partial;
    return;
  }
  if ("text" in message) {
    $("partial").textContent = "";
    if (message.text) {
      const item = document.createElement("li");
      item.className = "final";
      item.textContent = message.text;
      if (message.result) item.title = formatTimes(message.result);
      $("captions").appendChild(item);
    }
  }
}

function releaseAudio() {
  if (live.node) live.node.disconnect();
  if (live.media) live.media.getTracks().forEach((t) => t.stop());
  if (live.ctx) live.ctx.close();
  live.node = live.media = live.ctx = null;
}

async function start() {
  $("start").disabled = true;
  $("captions").replaceChildren();
  $("partial").textContent = "";
  setStatus($("status"), "starting", "Starting…");
  try {
    live.media = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    live.ctx = new AudioContext();
    await live.ctx.audioWorklet.addModule("/static/pcm-worklet.js");
    const ws = new WebSocket(streamUrl());
    ws.binaryType = "arraybuffer";
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error("cannot reach the server's /v1/stream"));
    });
    live.ws = ws;
    // The server resamples, so send at whatever rate the audio device runs.
    ws.send(JSON.stringify({ config: { sample_rate: live.ctx.sampleRate, words: true } }));
    ws.onmessage = (event) => onStreamMessage(JSON.parse(event.data));
    ws.onclose = (event) => {
      releaseAudio();
      live.ws = null;
      $("start").disabled = false;
      $("stop").disabled = true;
      if ($("status").dataset.state !== "error") {
        if (event.code === 1000) setStatus($("status"), "stopped", "Stopped");
        else setStatus($("status"), "error", `Connection closed (${event.code} ${event.reason})`);
      }
    };
    live.node = new AudioWorkletNode(live.ctx, "pcm-capture");
    live.node.port.onmessage = (event) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(toPcm16(event.data));
    };
    live.ctx.createMediaStreamSource(live.media).connect(live.node);
    live.node.connect(live.ctx.destination); // keeps the graph pulling; the node outputs silence
    $("stop").disabled = false;
    setStatus($("status"), "recording", "Listening…");
  } catch (error) {
    releaseAudio();
    if (live.ws) live.ws.close();
    $("start").disabled = false;
    setStatus($("status"), "error", error.message || String(error));
  }
}

function stop() {
  $("stop").disabled = true;
  setStatus($("status"), "finishing", "Finishing…");
  if (live.node) live.node.port.postMessage("flush");
  // Let the flushed block reach the socket before the end-of-stream marker.
  setTimeout(() => {
    if (live.media) live.media.getTracks().forEach((t) => t.stop());
    if (live.ws && live.ws.readyState === WebSocket.OPEN) live.ws.send(JSON.stringify({ eof: 1 }));
  }, 200);
}

async function transcribeFile(file) {
  const status = $("file-status");
  setStatus(status, "working", `Transcribing ${file.name}…`);
  $("transcript").textContent = "";
  $("words").hidden = true;
  const form = new FormData();
  form.append("file", file);
  form.append("response_format", "verbose_json");
  form.append("timestamp_granularities[]", "word");
  try {
    const response = await fetch("/v1/audio/transcriptions", { method: "POST", body: form });
    const body = await response.json();
    if (!response.ok) {
      setStatus(status, "error", body.error ? body.error.message : `HTTP ${response.status}`);
      return;
    }
    $("transcript").textContent = body.text;
    const rows = (body.words || []).map((w) => {
      const row = document.createElement("tr");
      for (const value of [w.word, w.start.toFixed(2), w.end.toFixed(2)]) {
        const cell = document.createElement("td");
        cell.textContent = value;
        row.appendChild(cell);
      }
      return row;
    });
    $("words").querySelector("tbody").replaceChildren(...rows);
    $("words").hidden = rows.length === 0;
    setStatus(status, "done", `${file.name}: ${body.duration.toFixed(1)} s of audio`);
  } catch (error) {
    setStatus(status, "error", error.message || String(error));
  }
}

function setUp() {
  $("start").addEventListener("click", start);
  $("stop").addEventListener("click", stop);
  $("file").addEventListener("change", (event) => {
    if (event.target.files.length) transcribeFile(event.target.files[0]);
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) transcribeFile(event.dataTransfer.files[0]);
  });
}

setUp();
