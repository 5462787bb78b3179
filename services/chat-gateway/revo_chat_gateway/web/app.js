// revo's web chat: a client of the gateway's own API, nothing more.
//
// The API key is checked with GET /v1/whoami and kept in this browser (localStorage when
// "remember" is ticked, else sessionStorage). Chat goes over the WebSocket at /v1/ws
// (frames in libs/revo_contracts/chat.py): a session's numbered items are the
// conversation and its runs' events; tokens stream an answer as it is written. A dropped
// socket reconnects and resumes with `hello {session_id, last_seq}`.
//
// What the page offers follows the key's role: roles that may chat get the composer, roles
// that may only read (a viewer) get the chats to read and a line saying so, and any other
// (a CI key) is turned away at sign-in. The gateway writes both lists into <body> from its
// permissions table; the gateway still checks every request and frame itself.
(function () {
  "use strict";

  const KEY = "revo.apiKey";
  const LAST_SESSION = "revo.session";
  const LAST_AGENT = "revo.agent";
  const DEFAULT_AGENT = "assistant";
  const AGENT_PREFIX = /^@([a-z0-9][a-z0-9_-]{0,63}) +\S/;
  const ACTIVE = new Set(["queued", "running", "waiting"]);
  const ENDED = new Set(["finished", "failed", "cancelled"]);
  const MAX_RETRY_MS = 8000;

  const state = {
    key: null,
    storage: null,
    who: null,
    ws: null,
    connection: "offline",
    retries: 0,
    reconnects: 0,
    retryTimer: null,
    // The session shown (null: a new chat, created by its first message).
    sessionId: null,
    // The session the socket is in on the server, and the one a `hello` asked for: frames
    // of another session (still on their way after a switch) are dropped until it comes.
    joined: null,
    expecting: null,
    lastSeq: 0,
    runs: new Map(),
    latestRun: null,
    panelRun: null,
    sessions: [],
    // "chat" (the full page) or "read" (read-only: no composer, no New chat, no Stop).
    access: null,
  };
  // For the console (and the browser test): the page's state, read-only by convention.
  window.revo = { state };

  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  };

  // -- the HTTP API -----------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message, code) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, key = state.key) {
    let response;
    try {
      response = await fetch(path, { headers: { Authorization: `Bearer ${key}` } });
    } catch (err) {
      throw new ApiError(0, "cannot reach the gateway", "network");
    }
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null;
    }
    if (!response.ok) {
      const error = (body && body.error) || {};
      throw new ApiError(response.status, error.message || `HTTP ${response.status}`, error.code);
    }
    return body;
  }

  // -- what the key's role may do ---------------------------------------------------------

  function rolesOf(attribute) {
    return new Set((document.body.dataset[attribute] || "").split(" ").filter(Boolean));
  }

  // "chat", "read", or null: this page has nothing for the role.
  function accessOf(role) {
    if (rolesOf("chatRoles").has(role)) return "chat";
    if (rolesOf("readRoles").has(role)) return "read";
    return null;
  }

  function turnedAway(who) {
    if (who.role === "ci") {
      return "This is a CI key (role ci): it is for CI jobs publishing to revo, which may only " +
        "check the key (GET /v1/whoami). This page is not for CI keys: sign in with a member " +
        "key to chat, or a viewer key to read.";
    }
    return `A key of role ${who.role} cannot use this page: sign in with a member key to chat, ` +
      "or a viewer key to read.";
  }

  // Shows what the access allows and hides the rest (elements marked data-access).
  function applyAccess(access, who) {
    state.access = access;
    for (const node of document.querySelectorAll("[data-access]")) {
      node.hidden = node.dataset.access !== access;
    }
    $("read-only").replaceChildren(...(access === "read" ? [
      el("strong", { text: `This key is read-only (${who.role}).` }),
      " You can open your own chats in the sidebar (those started with this key, or under " +
        "your user's token) and follow their runs as they happen. You cannot start a chat, " +
        "send a message or stop a run: to chat, sign in with a member key.",
    ] : []));
  }

  function chatting() {
    return state.access === "chat";
  }

  // -- signing in and out -----------------------------------------------------------------

  function savedKey() {
    for (const storage of [sessionStorage, localStorage]) {
      const key = storage.getItem(KEY);
      if (key) return { key, storage };
    }
    return null;
  }

  async function start() {
    bindUi();
    const saved = savedKey();
    if (!saved) return showSignIn();
    try {
      const who = await api("/v1/whoami", saved.key);
      if (!accessOf(who.role)) {
        forget();
        return showSignIn(turnedAway(who));
      }
      enter(saved.key, saved.storage, who);
    } catch (err) {
      if (err.status === 401) forget();
      showSignIn(err.status === 401 ? "Your saved API key is no longer accepted: sign in again." :
        `Could not check your saved key: ${err.message}.`);
      if (err.status !== 401) $("api-key").value = saved.key;
    }
  }

  function showSignIn(message) {
    $("app").hidden = true;
    $("signin").hidden = false;
    setSignInError(message);
    $("api-key").focus();
  }

  function setSignInError(message) {
    $("signin-error").hidden = !message;
    $("signin-error").textContent = message || "";
  }

  async function onSignIn(event) {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) return setSignInError("Enter an API key.");
    const button = $("signin-button");
    button.disabled = true;
    button.textContent = "Signing in…";
    setSignInError(null);
    try {
      const who = await api("/v1/whoami", key);
      // Not kept: a key the page has no use for is not remembered either.
      if (!accessOf(who.role)) return setSignInError(turnedAway(who));
      const storage = $("remember").checked ? localStorage : sessionStorage;
      storage.setItem(KEY, key);
      $("api-key").value = "";
      enter(key, storage, who);
    } catch (err) {
      setSignInError(err.status === 401 ? `That API key was not accepted (${err.message}).` :
        `Sign-in failed: ${err.message}.`);
    } finally {
      button.disabled = false;
      button.textContent = "Sign in";
    }
  }

  function enter(key, storage, who) {
    Object.assign(state, { key, storage, who });
    applyAccess(accessOf(who.role), who);
    $("signin").hidden = true;
    $("app").hidden = false;
    $("who-tenant").textContent = who.tenant;
    $("who-role").textContent = `${who.role} · ${who.via === "jwt" ? "token" : "API key"}`;
    loadAgents();
    const remembered = storage.getItem(LAST_SESSION);
    resetConversation(remembered);
    refreshSessions();
    connect();
    if (chatting()) $("input").focus();
  }

  function forget() {
    for (const storage of [sessionStorage, localStorage]) {
      storage.removeItem(KEY);
      storage.removeItem(LAST_SESSION);
    }
  }

  function signOut(message) {
    forget();
    disconnect();
    Object.assign(state, { key: null, storage: null, who: null, sessions: [], access: null });
    resetConversation(null);
    renderSessions();
    showSignIn(message);
  }

  // -- agents and sessions ----------------------------------------------------------------

  async function loadAgents() {
    let agents = [DEFAULT_AGENT];
    try {
      const models = await api("/v1/models");
      const names = models.data.map((m) => m.id.replace(/^revo\//, ""));
      agents = [...new Set([DEFAULT_AGENT, ...names])];
    } catch (err) {
      if (err.status === 401) return signOut("Your API key is no longer accepted.");
    }
    const picker = $("agent");
    const wanted = localStorage.getItem(LAST_AGENT);
    picker.replaceChildren(...agents.map((name) => el("option", { value: name, text: name })));
    picker.value = agents.includes(wanted) ? wanted : DEFAULT_AGENT;
  }

  let refreshing = null;
  async function refreshSessions() {
    if (refreshing) return refreshing;
    refreshing = (async () => {
      try {
        const listed = await api("/v1/sessions");
        state.sessions = listed.data;
        renderSessions();
      } catch (err) {
        if (err.status === 401) signOut("Your API key is no longer accepted.");
        else if (state.key) showError(`Could not load your chats: ${err.message}`);
      } finally {
        refreshing = null;
      }
    })();
    return refreshing;
  }

  function renderSessions() {
    const items = state.sessions.map((session) => {
      const button = el("button", {
        type: "button",
        class: "session",
        "data-testid": "session-item",
        "data-session-id": session.id,
        "aria-current": session.id === state.sessionId ? "true" : null,
        title: session.title || "Untitled chat",
        onclick: () => openSession(session.id),
      },
      el("span", { class: "session-title", text: session.title || "Untitled chat" }),
      el("time", { class: "session-time", datetime: session.updated_at, text: ago(session.updated_at) }));
      return el("li", {}, button);
    });
    $("session-list").replaceChildren(...items);
    $("sessions-empty").hidden = items.length > 0 || !state.key;
    const current = state.sessions.find((s) => s.id === state.sessionId);
    $("chat-title").textContent = current ? current.title || "Untitled chat" :
      state.sessionId ? "Chat" : chatting() ? "New chat" : "No chat open";
  }

  function ago(iso) {
    const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
    if (!(seconds >= 0)) return "";
    if (seconds < 60) return "just now";
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
    return new Date(iso).toLocaleDateString();
  }

  function openSession(sessionId) {
    if (sessionId === state.sessionId && state.joined === sessionId) return;
    resetConversation(sessionId);
    if (online()) hello(sessionId, 0);
    closePanelOnSmallScreens();
  }

  function newChat() {
    if (!chatting()) return;
    resetConversation(null);
    closePanelOnSmallScreens();
    $("input").focus();
  }

  function resetConversation(sessionId) {
    state.sessionId = sessionId;
    state.lastSeq = 0;
    state.runs.clear();
    state.latestRun = null;
    state.panelRun = null;
    if (state.storage) {
      if (sessionId) state.storage.setItem(LAST_SESSION, sessionId);
      else state.storage.removeItem(LAST_SESSION);
    }
    $("messages").replaceChildren($("empty"));
    $("empty").hidden = false;
    hideError();
    renderSessions();
    renderPanel();
    updateControls();
  }

  // -- the socket -------------------------------------------------------------------------

  function online() {
    return state.ws !== null && state.ws.readyState === WebSocket.OPEN;
  }

  function connect() {
    clearTimeout(state.retryTimer);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/v1/ws?token=${encodeURIComponent(state.key)}`);
    state.ws = ws;
    state.joined = null;
    state.expecting = null;
    setConnection(state.retries ? "reconnecting" : "connecting");
    ws.onopen = () => {
      if (state.retries) state.reconnects += 1;
      state.retries = 0;
      setConnection("online");
      // Resume where we were: only the items after the last one we have.
      if (state.sessionId) hello(state.sessionId, state.lastSeq);
    };
    ws.onmessage = (event) => {
      if (state.ws !== ws) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      onFrame(frame);
    };
    ws.onclose = (event) => {
      if (state.ws !== ws) return;
      state.ws = null;
      state.joined = null;
      if (!state.key) return setConnection("offline");
      if (event.code === 1008) showError("The connection was closed: this page fell behind (slow consumer).");
      if (event.code === 1009) showError("That message is too large to send.");
      scheduleReconnect();
    };
  }

  function disconnect() {
    clearTimeout(state.retryTimer);
    const ws = state.ws;
    state.ws = null;
    state.retries = 0;
    if (ws) ws.close(1000, "signed out");
    setConnection("offline");
  }

  async function scheduleReconnect() {
    state.retries += 1;
    setConnection("reconnecting");
    // A socket refused at the handshake looks like any drop: ask whether the key still works.
    if (state.retries > 1) {
      try {
        await api("/v1/whoami");
      } catch (err) {
        if (err.status === 401) return signOut("Your API key is no longer accepted: sign in again.");
      }
    }
    if (!state.key) return;
    const delay = Math.min(MAX_RETRY_MS, 500 * 2 ** (state.retries - 1)) * (0.8 + Math.random() * 0.4);
    state.retryTimer = setTimeout(connect, delay);
  }

  function setConnection(connection) {
    state.connection = connection;
    const conn = $("conn");
    conn.dataset.state = connection;
    $("conn-text").textContent = connection;
    updateControls();
  }

  function send(frame) {
    if (!online()) return false;
    state.ws.send(JSON.stringify(frame));
    return true;
  }

  function hello(sessionId, lastSeq) {
    const frame = { type: "hello", last_seq: lastSeq };
    if (sessionId) frame.session_id = sessionId;
    if (send(frame)) {
      state.joined = sessionId;
      state.expecting = sessionId || "*";
    }
  }

  function onFrame(frame) {
    switch (frame.type) {
      case "session":
        return onSession(frame);
      case "item":
        return shown() ? onItem(frame) : undefined;
      case "token":
        return shown() ? onToken(frame) : undefined;
      case "error":
        return onError(frame);
      default:
        return undefined;
    }
  }

  // Whether the socket's session is the one on the screen (not one being left, nor a
  // chat the user moved away from with "New chat").
  function shown() {
    return !state.expecting && state.joined === state.sessionId;
  }

  function onSession(frame) {
    if (state.expecting && state.expecting !== "*" && state.expecting !== frame.session_id) return;
    state.expecting = null;
    state.joined = frame.session_id;
    if (state.sessionId !== frame.session_id) {
      // The first message of a new chat made this session.
      state.sessionId = frame.session_id;
      if (state.storage) state.storage.setItem(LAST_SESSION, frame.session_id);
    }
    renderSessions();
  }

  function onItem(item) {
    if (item.seq <= state.lastSeq) return; // already shown (a resumed socket)
    state.lastSeq = item.seq;
    $("empty").hidden = true;
    switch (item.kind) {
      case "user":
        onUserItem(item);
        break;
      case "assistant":
        onAnswer(item);
        break;
      case "event":
        if (item.event) onRunEvent(item.event);
        break;
      default:
        break;
    }
    updateControls();
  }

  function onUserItem(item) {
    const run = runOf(item.run_id, item.agent);
    state.latestRun = run.id;
    state.panelRun = run.id;
    appendMessage(userMessage(item));
    showPending(run, "queued…");
    if (!state.sessions.some((s) => s.id === state.sessionId)) refreshSessions();
    renderPanel();
  }

  function onToken(token) {
    const run = runOf(token.run_id, token.agent);
    if (!run.streaming) {
      run.streaming = assistantMessage(run.id, token.agent, null);
      if (run.pending) run.pending.replaceWith(run.streaming.node);
      else appendMessage(run.streaming.node);
      run.pending = null;
    }
    const stick = nearBottom();
    run.streaming.text.appendData(token.delta);
    if (stick) scrollToBottom();
  }

  function onAnswer(item) {
    const run = runOf(item.run_id, item.agent);
    const message = assistantMessage(run.id, item.agent || run.agent, item.content || "");
    const stick = nearBottom();
    const placeholder = run.streaming ? run.streaming.node : run.pending;
    if (placeholder) placeholder.replaceWith(message.node);
    else appendMessage(message.node);
    run.streaming = null;
    run.pending = null;
    if (stick) scrollToBottom();
  }

  function onError(frame) {
    if (frame.code === "not_found" && state.expecting && state.expecting !== "*") {
      // The chat we asked for is gone (or not this tenant's): start a new one.
      state.expecting = null;
      state.joined = null;
      resetConversation(null);
      refreshSessions();
      return showError("That chat could not be opened: it does not exist for your tenant.");
    }
    showError(`${frame.message} (${frame.code})`);
  }

  // -- runs ------------------------------------------------------------------------------

  function runOf(runId, agent) {
    let run = state.runs.get(runId);
    if (!run) {
      run = { id: runId, agent: agent || null, status: "queued", steps: [], tools: new Map(),
        firstTs: null, tokens: 0, error: null, streaming: null, pending: null };
      state.runs.set(runId, run);
    }
    if (agent && !run.agent) run.agent = agent;
    return run;
  }

  function onRunEvent(event) {
    const run = runOf(event.run_id, event.agent);
    if (run.firstTs === null) run.firstTs = event.ts;
    const at = event.ts - run.firstTs;
    switch (event.type) {
      case "queued":
        run.status = "queued";
        run.steps.push({ kind: "status", type: "queued", at, text: `Queued for ${event.agent}` });
        break;
      case "started":
        run.status = "running";
        setPending(run, "thinking…");
        run.steps.push({ kind: "status", type: "started", at,
          text: `Started on ${event.runner_id}${event.attempt > 1 ? ` (attempt ${event.attempt})` : ""}` });
        break;
      case "model_call": {
        const usage = event.usage ? ` · ${event.usage.total_tokens} tokens` : "";
        run.tokens += event.usage ? event.usage.total_tokens : 0;
        run.steps.push({ kind: "status", type: "model_call", at,
          text: `Step ${event.step}: model ${event.model}${usage}` });
        break;
      }
      case "tool_called": {
        const call = { kind: "tool", type: "tool_called", at, step: event.step, callId: event.call_id,
          tool: event.tool, arguments: event.arguments || {}, result: null };
        run.tools.set(event.call_id, call);
        run.steps.push(call);
        setPending(run, `using ${event.tool}…`);
        break;
      }
      case "tool_result": {
        const call = run.tools.get(event.call_id);
        const result = { ok: event.ok, output: event.output || "", error: event.error || null };
        setPending(run, "thinking…");
        if (call) call.result = result;
        else run.steps.push({ kind: "status", type: "tool_result", at, text: `Tool result: ${summary(result)}` });
        break;
      }
      case "assistant_message":
        run.steps.push({ kind: "status", type: "assistant_message", at,
          text: `${event.agent}: ${clip(event.content, 160)}` });
        break;
      case "waiting_for_input":
        run.status = "waiting";
        setPending(run, "waiting for an answer…");
        run.steps.push({ kind: "status", type: "waiting_for_input", at, text: `Asks: ${event.question}` });
        appendNotice(run, "waiting", `${run.agent || "The agent"} asks: ${event.question}`);
        break;
      case "finished":
        run.status = "finished";
        if (event.usage) run.tokens = Math.max(run.tokens, event.usage.total_tokens);
        run.steps.push({ kind: "status", type: "finished", at, text: "Finished" });
        break;
      case "failed":
        run.status = "failed";
        run.error = `${event.reason} (${event.code})`;
        run.steps.push({ kind: "error", type: "failed", at, text: `Failed: ${run.error}` });
        endStreaming(run);
        appendNotice(run, "failed", `The run failed: ${run.error}`);
        break;
      case "cancelled":
        run.status = "cancelled";
        run.steps.push({ kind: "status", type: "cancelled", at,
          text: `Cancelled${event.reason ? `: ${event.reason}` : ""}` });
        endStreaming(run);
        appendNotice(run, "cancelled", `Stopped${event.reason ? `: ${event.reason}` : ""}.`);
        break;
      default:
        break;
    }
    if (ENDED.has(run.status)) refreshSessionsSoon();
    if (run.id === state.panelRun) renderPanel();
  }

  function endStreaming(run) {
    if (run.pending) run.pending.remove();
    run.pending = null;
    if (!run.streaming) return;
    run.streaming.node.dataset.streaming = "false";
    run.streaming.node.classList.add("interrupted");
    run.streaming = null;
  }

  let refreshTimer = null;
  function refreshSessionsSoon() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refreshSessions, 300);
  }

  function summary(result) {
    if (!result.ok) return `error: ${result.error || "failed"}`;
    const lines = result.output ? result.output.split("\n").length : 0;
    return result.output ? `${clip(result.output, 140)}${lines > 1 ? ` (${lines} lines)` : ""}` : "ok (no output)";
  }

  function clip(text, chars) {
    const flat = String(text).replace(/\s+/g, " ").trim();
    return flat.length > chars ? `${flat.slice(0, chars - 1)}…` : flat;
  }

  // -- the run panel ---------------------------------------------------------------------

  function renderPanel() {
    const run = state.panelRun ? state.runs.get(state.panelRun) : null;
    const status = run ? run.status : "idle";
    const badge = $("run-status");
    badge.dataset.status = status;
    badge.textContent = status;
    $("run-meta").hidden = !run;
    $("run-empty").hidden = Boolean(run);
    if (!run) return $("run-steps").replaceChildren();
    $("run-agent").textContent = run.agent || "–";
    $("run-id").textContent = run.id;
    $("run-tokens").textContent = run.tokens ? String(run.tokens) : "–";
    $("run-steps").replaceChildren(...run.steps.map(stepNode));
    for (const node of document.querySelectorAll(".msg[data-run-id]")) {
      node.classList.toggle("selected", node.dataset.runId === run.id);
    }
  }

  function stepNode(step) {
    const time = el("span", { class: "step-time", text: `+${Math.max(0, step.at).toFixed(1)}s` });
    if (step.kind !== "tool") {
      return el("li", { class: `step step-${step.kind}`, "data-testid": "run-step", "data-type": step.type },
        el("span", { class: "step-dot" }), el("span", { class: "step-text", text: step.text }), time);
    }
    const result = step.result;
    const stateName = !result ? "pending" : result.ok ? "ok" : "error";
    const args = JSON.stringify(step.arguments, null, 2);
    const node = el("li", { class: `step step-tool tool-${stateName}`, "data-testid": "tool-call",
      "data-tool": step.tool, "data-state": stateName },
    el("span", { class: "step-dot" }),
    el("div", { class: "tool" },
      el("div", { class: "tool-head" },
        el("code", { class: "tool-name", text: step.tool }),
        el("span", { class: `tool-badge ${stateName}`, text: stateName === "pending" ? "running…" : stateName })),
      args === "{}" ? null : el("pre", { class: "tool-args", "data-testid": "tool-args", text: args }),
      result ? el("div", { class: "tool-result", "data-testid": "tool-result", text: summary(result) }) : null,
      result && result.ok && result.output.length > 140 ?
        el("details", {}, el("summary", { text: "full output" }),
          el("pre", { class: "tool-output", text: result.output.slice(0, 20000) })) : null),
    time);
    return node;
  }

  function selectRun(runId) {
    state.panelRun = runId;
    renderPanel();
    document.body.classList.add("panel-open");
  }

  function closePanelOnSmallScreens() {
    document.body.classList.remove("panel-open", "sidebar-open");
  }

  // -- messages --------------------------------------------------------------------------

  function userMessage(item) {
    return el("article", { class: "msg user", "data-testid": "message", "data-kind": "user",
      "data-agent": item.agent, "data-run-id": item.run_id },
    el("div", { class: "msg-head" },
      el("span", { class: "msg-who", text: "You" }),
      item.agent ? el("span", { class: "msg-to", text: `to ${item.agent}` }) : null),
    el("div", { class: "msg-body plain", "data-testid": "message-body", text: item.content || "" }));
  }

  // content null: a message being streamed (its text node grows token by token).
  function assistantMessage(runId, agent, content) {
    const streaming = content === null;
    const body = el("div", { class: "msg-body", "data-testid": streaming ? "streaming-text" : "message-body" });
    const text = document.createTextNode("");
    if (streaming) {
      body.classList.add("plain");
      body.append(text, el("span", { class: "caret", "aria-hidden": "true" }));
    } else {
      body.classList.add("markdown");
      body.innerHTML = window.RevoMarkdown.render(content); // sanitised: see markdown.js
    }
    const node = el("article", { class: "msg assistant", "data-testid": "message",
      "data-kind": "assistant", "data-agent": agent || "", "data-run-id": runId,
      "data-streaming": streaming ? "true" : "false" },
    el("div", { class: "msg-head" },
      el("span", { class: "avatar", "aria-hidden": "true", text: (agent || "?").charAt(0).toUpperCase() }),
      el("span", { class: "msg-who", "data-testid": "message-agent", text: agent || "agent" }),
      el("button", { type: "button", class: "link small", "data-testid": "run-details",
        onclick: () => selectRun(runId), text: "run details" })),
    body);
    return { node, text };
  }

  // Until the first token: who is working on the answer, and on what.
  function showPending(run, text) {
    if (run.pending || run.streaming || !ACTIVE.has(run.status)) return;
    const agent = run.agent || "agent";
    run.pending = el("div", { class: "msg assistant pending", "data-testid": "pending", "data-run-id": run.id },
      el("div", { class: "msg-head" },
        el("span", { class: "avatar", "aria-hidden": "true", text: agent.charAt(0).toUpperCase() }),
        el("span", { class: "msg-who", text: agent })),
      el("div", { class: "msg-body typing" },
        el("span", { class: "dots", "aria-hidden": "true" }, el("i"), el("i"), el("i")),
        el("span", { class: "pending-text", text })));
    appendMessage(run.pending);
  }

  function setPending(run, text) {
    if (run.pending) run.pending.querySelector(".pending-text").textContent = text;
  }

  function appendNotice(run, type, text) {
    appendMessage(el("div", { class: `notice notice-${type}`, "data-testid": "notice", "data-type": type,
      "data-run-id": run.id }, text));
  }

  function appendMessage(node) {
    const stick = nearBottom();
    $("empty").hidden = true;
    $("messages").append(node);
    if (stick) scrollToBottom();
  }

  function nearBottom() {
    const box = $("messages");
    return box.scrollHeight - box.scrollTop - box.clientHeight < 120;
  }

  function scrollToBottom() {
    const box = $("messages");
    box.scrollTop = box.scrollHeight;
  }

  // -- the composer ----------------------------------------------------------------------

  function runGoing() {
    const run = state.latestRun ? state.runs.get(state.latestRun) : null;
    return Boolean(run && ACTIVE.has(run.status));
  }

  function updateControls() {
    $("stop").disabled = !(chatting() && runGoing() && online());
    $("send").disabled = !(chatting() && online());
  }

  function onSend(event) {
    event.preventDefault();
    const input = $("input");
    const content = input.value.trim();
    if (!content || !chatting()) return;
    if (!online()) return showError("Not connected: your message is kept until the connection is back.");
    // A new chat on a socket still in another session: join a new session first.
    if (!state.sessionId && state.joined) hello(null, 0);
    const frame = { type: "message", content };
    if (!AGENT_PREFIX.test(content)) frame.agent = $("agent").value || DEFAULT_AGENT;
    send(frame);
    hideError();
    input.value = "";
    autosize();
  }

  function onStop() {
    if (!chatting() || !runGoing()) return;
    send({ type: "cancel", run_id: state.latestRun });
    $("stop").disabled = true;
  }

  function onKey(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    } else if (event.key === "Escape" && runGoing()) {
      onStop();
    }
  }

  function autosize() {
    const input = $("input");
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 240)}px`;
  }

  // -- errors ----------------------------------------------------------------------------

  function showError(message) {
    $("banner-text").textContent = message;
    $("banner").hidden = false;
  }

  function hideError() {
    $("banner").hidden = true;
  }

  // -- wiring ----------------------------------------------------------------------------

  function bindUi() {
    $("signin-form").addEventListener("submit", onSignIn);
    $("signout").addEventListener("click", () => signOut());
    $("new-chat").addEventListener("click", newChat);
    $("composer").addEventListener("submit", onSend);
    $("input").addEventListener("keydown", onKey);
    $("input").addEventListener("input", autosize);
    $("stop").addEventListener("click", onStop);
    $("banner-close").addEventListener("click", hideError);
    $("agent").addEventListener("change", (e) => localStorage.setItem(LAST_AGENT, e.target.value));
    $("toggle-panel").addEventListener("click", () => document.body.classList.toggle("panel-open"));
    $("toggle-sidebar").addEventListener("click", () => document.body.classList.toggle("sidebar-open"));
    $("close-panel").addEventListener("click", closePanelOnSmallScreens);
    $("close-sidebar").addEventListener("click", closePanelOnSmallScreens);
    $("messages").addEventListener("click", onCopy);
    setInterval(() => state.key && renderSessions(), 60000); // keeps "5 min ago" true
  }

  async function onCopy(event) {
    const button = event.target.closest(".code-copy");
    if (!button) return;
    const code = button.closest(".code-block").querySelector("code").textContent;
    button.textContent = (await copyText(code)) ? "Copied" : "Copy failed";
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  }

  async function copyText(text) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch (err) {
      // No Clipboard API off https (but for localhost): the old way still works there.
      const area = el("textarea", { class: "offscreen", readonly: true });
      area.value = text;
      document.body.append(area);
      area.select();
      const copied = document.execCommand("copy");
      area.remove();
      return copied;
    }
  }

  document.addEventListener("DOMContentLoaded", start);
})();
