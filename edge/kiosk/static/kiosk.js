// Kiosk page: long-poll the session state, render it, refresh the preview while the camera runs.
"use strict";
const $ = (id) => document.getElementById(id);
let state = { version: -1, language: "zh" };
let previewTimer = null;

function localise(lang) {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of document.querySelectorAll("[data-zh]")) el.textContent = el.dataset[lang];
  $("title").textContent = lang === "zh" ? "养老金资格认证" : "Pension certification";
  $("lang").textContent = lang === "zh" ? "English" : "中文";
}

const DESK_TEXT = {
  denied: { zh: "工号或密码错误", en: "Wrong staff ID or PIN" },
  locked: { zh: (m) => `错误次数过多，请 ${m} 分钟后再试`,
    en: (m) => `Too many wrong PINs: try again in ${m} min` },
  sent: { zh: "已发送：", en: "Sent: " },
};

function renderDesk(s) {
  $("staff").hidden = !s.desk_enabled || !!s.desk;
  $("desk").hidden = !s.desk;
  if (s.desk) {
    $("desk-login").hidden = true;
    $("desk-who").textContent = s.desk;
  } else {
    $("desk-sent").textContent = "";
  }
}

function renderStatus(s, lang) {
  $("status").hidden = s.step !== "status";
  $("status-who").textContent = s.retiree || "";
  const rows = $("status-rows");
  rows.replaceChildren();
  for (const row of s.status || []) {
    const dt = document.createElement("dt");
    dt.textContent = row.label[lang];
    const dd = document.createElement("dd");
    dd.textContent = row.value[lang];
    rows.append(dt, dd);
  }
}

function render(s) {
  const lang = s.language;
  localise(lang);
  renderDesk(s);
  const camera = s.step === "capture" || s.step === "challenge";
  const result = s.step === "done";
  const armed = s.step === "idle" && s.choice === "status";
  $("idle").hidden = s.step !== "idle";
  $("camera").hidden = !camera;
  $("result").hidden = !result;
  $("check-status").hidden = !s.choice_text || armed || !!s.desk;
  $("cancel-status").hidden = !armed;
  document.body.dataset.step = s.step;
  document.body.dataset.choice = armed ? "status" : "";
  $("prompt").textContent = armed ? s.choice_text[lang] : s.text[lang];
  renderStatus(s, lang);
  $("qr-box").hidden = !s.receipt_text || !(result || s.step === "status");
  $("qr").hidden = !s.qr;
  if (s.qr && $("qr").getAttribute("src") !== s.qr) $("qr").src = s.qr;
  $("qr-text").textContent = s.receipt_text ? s.receipt_text[lang] : "";
  $("attempt").textContent = s.attempt > 1 && camera
    ? (lang === "zh" ? `第 ${s.attempt} 次尝试（共 3 次）` : `Try ${s.attempt} of 3`) : "";
  $("countdown").hidden = s.seconds_left == null || s.step !== "challenge";
  if (s.seconds_left != null) $("seconds").textContent = Math.ceil(s.seconds_left);
  if (result) {
    const ok = s.decision === "pass";
    $("mark").textContent = ok ? "✓" : "!";
    $("mark").className = "mark " + (ok ? "pass" : "other");
    $("receipt").textContent = s.receipt;
    $("next").textContent = s.next ? s.next[lang] : "";
  }
  if (camera && !previewTimer) {
    previewTimer = setInterval(() => { $("preview").src = "/api/preview.jpg?t=" + Date.now(); }, 250);
  } else if (!camera && previewTimer) {
    clearInterval(previewTimer);
    previewTimer = null;
  }
}

async function poll() {
  for (;;) {
    try {
      const r = await fetch(`/api/state?after=${state.version}`, { cache: "no-store" });
      state = await r.json();
      render(state);
    } catch (e) {
      await new Promise((ok) => setTimeout(ok, 1000));
    }
  }
}

function post(url, body) {
  return fetch(url, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body) });
}

$("staff").addEventListener("click", () => {
  $("desk-login").hidden = false;
  $("login-error").textContent = "";
  $("staff-id").focus();
});
$("login-cancel").addEventListener("click", () => {
  $("desk-login").reset();
  $("desk-login").hidden = true;
});
$("desk-login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const r = await post("/api/desk/login", { staff_id: $("staff-id").value, pin: $("pin").value });
  $("pin").value = "";
  const lang = state.language;
  if (r.status === 429) {
    const minutes = Math.ceil((await r.json()).retry_after / 60);
    $("login-error").textContent = DESK_TEXT.locked[lang](minutes);
  } else {
    $("login-error").textContent = r.ok ? "" : DESK_TEXT.denied[lang];
  }
});
for (const button of document.querySelectorAll("[data-command]")) {
  button.addEventListener("click", async () => {
    const r = await post("/api/desk/order", { command: button.dataset.command,
      document: $("document").value, note: $("note").value });
    const label = button.querySelector("[data-zh]").textContent;
    $("desk-sent").textContent = r.ok ? DESK_TEXT.sent[state.language] + label : "";
  });
}
$("desk-logout").addEventListener("click", () => post("/api/desk/logout", {}));

$("check-status").addEventListener("click", () => post("/api/choice", { choice: "status" }));
$("cancel-status").addEventListener("click", () => post("/api/choice", { choice: null }));
$("lang").addEventListener("click", () => {
  const language = state.language === "zh" ? "en" : "zh";
  post("/api/language", { language });
});
poll();
