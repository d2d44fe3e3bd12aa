// The phone page: ask for a code, check it, then send camera frames and show the session's
// screens (long-poll). The page decides nothing: the remote terminal does.
"use strict";
const $ = (id) => document.getElementById(id);
const FRAME_MS = 100;      // 10 frames a second
const FRAME_WIDTH = 640;   // frames are scaled down to this width before upload
let lang = "zh";
let voice = false;
let state = null;
let stream = null;
let sending = false;
let running = false;
let spoken = null;

function texts() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of document.querySelectorAll("[data-zh]")) el.textContent = el.dataset[lang];
  $("lang").textContent = lang === "zh" ? "English" : "中文";
  if (state) render(state);
  showStatus();
}

function say(text) {
  if (!voice || !("speechSynthesis" in window) || !text) return;
  speechSynthesis.cancel();
  const u = new SpeechSynthesisUtterance(text);
  u.lang = lang === "zh" ? "zh-CN" : "en-GB";
  u.rate = 0.85;
  speechSynthesis.speak(u);
}

function error(body) {
  const msg = body && body.message ? body.message[lang] : (body && body.error) || "";
  $("error").textContent = msg;
  say(msg);
}

async function post(path, body) {
  const r = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify(body), credentials: "same-origin"});
  let data = {};
  try { data = await r.json(); } catch (e) { data = {error: "HTTP " + r.status}; }
  return {ok: r.ok, status: r.status, data};
}

function idNumber() { return $("id-number").value.trim().toUpperCase(); }

async function sendCode() {
  $("error").textContent = "";
  $("sent").textContent = "";
  const r = await post("/api/code", {id_number: idNumber(), language: lang});
  if (!r.ok) return error(r.data);
  $("sent").textContent = r.data.message[lang];
  say(r.data.message[lang]);
  $("code").focus();
}

async function start(event) {
  event.preventDefault();
  $("error").textContent = "";
  try {
    stream = await navigator.mediaDevices.getUserMedia(
      {video: {facingMode: "user", width: {ideal: 640}, height: {ideal: 480}}, audio: false});
  } catch (e) {
    return error({message: {zh: "需要使用摄像头，请允许访问摄像头", en: "The camera is needed: please allow it"}});
  }
  const r = await post("/api/verify", {id_number: idNumber(), code: $("code").value.trim(), language: lang});
  if (!r.ok) { stop(); return error(r.data); }
  $("identify").hidden = true;
  $("certify").hidden = false;
  $("video").srcObject = stream;
  running = true;
  render(r.data);
  frames();
  poll(r.data.version);
}

const WORDS = {
  kiosk: {zh: "自助终端", en: "self-service terminal"},
  desk: {zh: "社区窗口", en: "community desk"},
  mobile: {zh: "手机", en: "phone"},
  pay: {zh: "正常发放", en: "paid"},
  resume: {zh: "恢复发放（含补发）", en: "paid again, with arrears"},
  hold: {zh: "暂停发放：请尽快认证", en: "on hold: please certify soon"},
  stop: {zh: "已停发", en: "stopped"},
  none: {zh: "暂无", en: "none yet"},
};

function word(key) { return (WORDS[key] || WORDS.none)[lang]; }

async function lookup() {
  $("error").textContent = "";
  const r = await post("/api/verify",
    {id_number: idNumber(), code: $("code").value.trim(), language: lang, purpose: "status"});
  if (!r.ok) return error(r.data);
  status = r.data.status;
  $("identify").hidden = true;
  $("status").hidden = false;
  showStatus();
}

let status = null;

function showStatus() {
  if (!status) return;
  const s = status;
  $("st-id").textContent = s.retiree_id;
  $("st-until").textContent = s.certified_until || word("none");
  $("st-due").textContent = s.next_due || word("none");
  $("st-last").textContent = s.last_certified_on
    ? [s.last_certified_on, word(s.last_channel), s.last_place].filter(Boolean).join(" · ")
    : word("none");
  $("st-pay").textContent = s.payment_decision
    ? `${s.payment_period}: ${word(s.payment_decision)}` : word("none");
  say($("status").innerText);
}

function stop() {
  running = false;
  if (stream) for (const t of stream.getTracks()) t.stop();
  stream = null;
}

async function frames() {
  const video = $("video");
  const canvas = document.createElement("canvas");
  while (running) {
    const t0 = performance.now();
    if (!sending && video.videoWidth > 0) {
      const scale = Math.min(1, FRAME_WIDTH / video.videoWidth);
      canvas.width = Math.round(video.videoWidth * scale);
      canvas.height = Math.round(video.videoHeight * scale);
      canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
      sending = true;
      canvas.toBlob(async (blob) => {
        try {
          const r = await fetch("/api/frame", {method: "POST", body: blob,
            headers: {"Content-Type": "image/jpeg"}, credentials: "same-origin"});
          if (r.status === 401 || r.status === 409) running = false;
        } catch (e) { /* the next frame tries again */ }
        sending = false;
      }, "image/jpeg", 0.85);
    }
    await new Promise((ok) => setTimeout(ok, Math.max(0, FRAME_MS - (performance.now() - t0))));
  }
}

async function poll(version) {
  while (true) {
    let r;
    try { r = await fetch("/api/state?after=" + version, {credentials: "same-origin"}); }
    catch (e) { await new Promise((ok) => setTimeout(ok, 1000)); continue; }
    if (!r.ok) { stop(); return error(await r.json()); }
    const s = await r.json();
    version = s.version;
    render(s);
    if (s.step === "done") { stop(); if (s.decision === "pass") receipt(); return; }
  }
}

async function receipt() {
  for (let i = 0; i < 20; i++) {  // central applies the result within seconds
    const r = await fetch("/api/receipt", {credentials: "same-origin"});
    if (r.status === 200) {
      $("qr").src = "/api/receipt.svg";
      $("qr-box").hidden = false;
      return;
    }
    if (r.status !== 202) return;
    await new Promise((ok) => setTimeout(ok, 2000));
  }
}

function render(s) {
  state = s;
  const text = s.text[lang];
  $("prompt").textContent = text;
  $("attempt").textContent = s.attempt > 1 ? (lang === "zh" ? `第 ${s.attempt} 次` : `Try ${s.attempt}`) : "";
  $("countdown").hidden = s.seconds_left == null;
  $("seconds").textContent = s.seconds_left == null ? "" : Math.ceil(s.seconds_left);
  if (s.step === "done") {
    $("certify").hidden = true;
    $("result").hidden = false;
    const pass = s.decision === "pass";
    $("mark").className = "mark " + (pass ? "pass" : "other");
    $("mark").textContent = pass ? "✓" : "!";
    $("receipt-line").hidden = !s.receipt;
    $("receipt").textContent = s.receipt || "";
    document.body.dataset.decision = s.decision || "none";
  }
  if (text !== spoken) { spoken = text; say(text); }
}

$("lang").addEventListener("click", () => { lang = lang === "zh" ? "en" : "zh"; texts();
  if (state && running) post("/api/language", {language: lang}); });
$("bigger").addEventListener("click", () => {
  const on = document.body.classList.toggle("big");
  $("bigger").setAttribute("aria-pressed", String(on)); });
$("voice").addEventListener("click", () => {
  voice = !voice; $("voice").setAttribute("aria-pressed", String(voice)); spoken = null;
  if (state) render(state); });
$("send").addEventListener("click", sendCode);
$("lookup").addEventListener("click", lookup);
$("identify").addEventListener("submit", start);
texts();
