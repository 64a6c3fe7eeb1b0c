// Chat behaviour that Gradio components do not offer: [n] markers open their source card,
// "copy citation" buttons put a briefing-ready citation on the clipboard, and the briefing
// links ("add to briefing", move up/down, remove) send a command to the server through a
// hidden textbox + button pair (#brief-cmd, #brief-cmd-btn). On the documents page the buttons of
// each document (view, delete, confirm, cancel) do the same through #docs-cmd, #docs-cmd-btn.
(() => {
  if (window.__ragChat) return;
  window.__ragChat = true;

  function openCard(id) {
    const card = document.getElementById(id);
    if (!card) return false;
    card.open = true;
    card.scrollIntoView({ behavior: "smooth", block: "center" });
    card.classList.remove("flash");
    void card.offsetWidth; // restart the animation
    card.classList.add("flash");
    return true;
  }

  async function copyText(text) {
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        return true;
      }
    } catch (e) { /* fall back below */ }
    // Plain-http deployments have no async clipboard: use a hidden textarea.
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    area.remove();
    return ok;
  }

  let nonce = 0;
  // Write a command into a hidden textbox and click its hidden button (#<id>, #<id>-btn).
  function send(id, value) {
    const box = document.querySelector(`#${id} textarea, #${id} input`);
    const run = document.getElementById(`${id}-btn`);
    if (!box || !run) return false;
    box.value = value;
    box.dispatchEvent(new Event("input", { bubbles: true }));
    setTimeout(() => run.click(), 30);
    return true;
  }

  function sendCommand(cmd) {
    nonce += 1;
    return send("brief-cmd", `${cmd}:${Date.now()}-${nonce}`); // always a new value, so Gradio sees a change
  }

  // The documents page: "<act>:<nonce>:<doc_id>" (the doc_id last: it may hold any character).
  function sendDocCommand(act, docId) {
    nonce += 1;
    return send("docs-cmd", `${act}:${Date.now()}-${nonce}:${docId}`);
  }

  // Once the paragraphs of docId are shown, bring them into view (below the list on a phone).
  function showWhenViewed(docId) {
    const started = Date.now();
    const timer = setInterval(() => {
      const view = [...document.querySelectorAll("#docs-view .doc-view")].find((el) => el.dataset.doc === docId);
      if (view || Date.now() - started > 10000) clearInterval(timer);
      if (view) view.scrollIntoView({ behavior: "smooth", block: "start" });
    }, 50);
  }

  document.addEventListener("click", (ev) => {
    const target = ev.target instanceof Element ? ev.target : null;
    if (!target) return;
    const add = target.closest("a.add-brief");
    if (add) {
      ev.preventDefault();
      ev.stopPropagation();
      // The command rides in the href (#brief-add-<turn>): the chat's sanitiser drops data-* attributes.
      const turn = (add.getAttribute("href") || "").replace(/^#brief-add-/, "");
      if (sendCommand(`add:${turn}`)) {
        add.textContent = "✓ 已加入簡報 Added to briefing";
        add.classList.add("added");
      }
      return;
    }
    const ctl = target.closest("a.brief-ctl");
    if (ctl) {
      ev.preventDefault();
      ev.stopPropagation();
      const m = /^#brief-(up|down|remove)-(\d+)$/.exec(ctl.getAttribute("href") || "");
      if (m && ctl.getAttribute("aria-disabled") !== "true") sendCommand(`${m[1]}:${m[2]}`);
      return;
    }
    const cite = target.closest('a.cite, a[href^="#src-"]');
    if (cite) {
      const id = (cite.getAttribute("href") || "").replace(/^#/, "");
      ev.preventDefault();
      ev.stopPropagation();
      if (!openCard(id)) {
        const note = document.querySelector("#sources .src-heading");
        if (note) note.classList.add("flash");
      }
      return;
    }
    const docButton = target.closest("#docs-list button.doc-btn");
    if (docButton) {
      ev.preventDefault();
      const act = docButton.dataset.act;
      const docId = docButton.dataset.doc || "";
      if (sendDocCommand(act, docId) && act === "view") showWhenViewed(docId);
      return;
    }
    const button = target.closest("button.copy-cite");
    if (button) {
      ev.preventDefault();
      const label = button.dataset.label || button.textContent;
      button.dataset.label = label;
      copyText(button.dataset.cite || "").then((ok) => {
        button.textContent = ok ? "已複製 ✓ Copied" : "無法複製 Copy failed";
        button.classList.toggle("copied", ok);
        window.__ragLastCopied = ok ? button.dataset.cite : null;
        setTimeout(() => { button.textContent = label; button.classList.remove("copied"); }, 1800);
      });
    }
  }, true);
})();
