// The chat page of `anymodal serve` (docs/serving.md, "The chat page").
//
// It asks GET /v1/models for the served model and its modalities, lets the user attach files of
// those modalities (the Attach button or a drop onto the page), and sends the whole conversation to
// POST /v1/chat/completions with stream: true, rendering the reply as its Server-Sent Events arrive.
// Media goes as data: URLs: image_url for images, input_audio for WAV and MP3 sound (as OpenAI's
// API has them), <modality>_url for everything else. Nothing is fetched from anywhere but the server.
"use strict";

(() => {
  const KEY_STORAGE = "anymodal.apiKey";

  // Media types for the suffixes, chosen so the server (anymodal/serve/media.py) gives a decoded
  // data: URL the same suffix back. Other suffixes go as the browser's type for the file.
  const MEDIA_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".opus": "audio/opus",
    ".m4a": "audio/mp4",
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".webm": "video/webm",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".avi": "video/x-msvideo",
    ".csv": "text/csv",
    ".npy": "application/x-npy",
  };
  // Which files the browser can show, and how.
  const IMAGE_PREVIEW = new Set([".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".avif"]);
  const VIDEO_PREVIEW = new Set([".mp4", ".m4v", ".webm", ".mov", ".mkv", ".ogv"]);
  const AUDIO_PREVIEW = new Set([".wav", ".mp3", ".ogg", ".oga", ".flac", ".m4a", ".opus", ".aac"]);
  // OpenAI's input_audio part takes these formats.
  const INPUT_AUDIO_FORMATS = new Set([".wav", ".mp3"]);

  const $ = (id) => document.getElementById(id);
  const ui = {
    modelName: $("model-name"),
    modalities: $("modalities"),
    keyToggle: $("key-toggle"),
    keyForm: $("key-form"),
    keyNote: $("key-note"),
    keyInput: $("api-key"),
    reset: $("reset"),
    conversation: $("conversation"),
    empty: $("empty"),
    composer: $("composer"),
    attachments: $("attachments"),
    notice: $("notice"),
    attach: $("attach"),
    fileInput: $("file-input"),
    prompt: $("prompt"),
    send: $("send"),
    stop: $("stop"),
    accepts: $("accepts"),
    overlay: $("drop-overlay"),
  };

  const state = {
    model: null, // the served model's id, once /v1/models answered
    modalities: [], // its modalities: {name, part_types, file_kinds, placeholder, tokens_per_input}
    exchanges: [], // the conversation: {text, media, reply, status, error, chunks, view}
    attachments: [], // files attached to the next message
    controller: null, // the AbortController of the reply being streamed
  };
  let nextId = 0;

  // -- small helpers ----------------------------------------------------------------------------

  function element(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "className") node.className = value;
      else if (name === "text") node.textContent = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) node.append(child);
    return node;
  }

  function suffixOf(name) {
    const dot = name.lastIndexOf(".");
    return dot > 0 ? name.slice(dot).toLowerCase() : "";
  }

  function modalityInfo(name) {
    return state.modalities.find((modality) => modality.name === name);
  }

  function showNotice(text, isError = false) {
    ui.notice.textContent = text;
    ui.notice.classList.toggle("is-error", isError);
  }

  function storedKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE) || "";
    } catch {
      return "";
    }
  }

  function storeKey(key) {
    try {
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      else sessionStorage.removeItem(KEY_STORAGE);
    } catch {
      // storage is off in this browser: the key lasts until the page is left
    }
    memoryKey = key;
  }
  let memoryKey = storedKey();

  function requestHeaders(extra = {}) {
    const headers = { ...extra };
    if (memoryKey) headers.Authorization = `Bearer ${memoryKey}`;
    return headers;
  }

  class ApiError extends Error {
    constructor(message, status = null, code = null) {
      super(message);
      this.name = "ApiError";
      this.status = status;
      this.code = code;
    }
  }

  // The server could not be reached, or the connection broke off.
  class NetworkError extends Error {
    constructor(message) {
      super(message);
      this.name = "NetworkError";
    }
  }

  // fetch, with a failure to connect said as such (an abort stays an AbortError).
  async function fetchApi(path, options) {
    try {
      return await fetch(path, options);
    } catch (error) {
      if (error && error.name === "AbortError") throw error;
      throw new NetworkError(
        `could not reach the server (${error && error.message}); is anymodal serve still running?`,
      );
    }
  }

  // The error of a response that is not 2xx: OpenAI's {"error": {"message", ...}} when it has one.
  async function responseError(response) {
    let message = `${response.status} ${response.statusText}`.trim();
    let code = null;
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) {
        message = body.error.message;
        code = body.error.code || null;
      }
    } catch {
      // not JSON: the status line will do
    }
    return new ApiError(message, response.status, code);
  }

  function describe(error) {
    return error && error.message ? error.message : String(error);
  }

  // -- the model and its modalities -------------------------------------------------------------

  async function loadModels() {
    ui.modelName.textContent = "connecting…";
    ui.modelName.classList.remove("is-missing");
    try {
      const response = await fetchApi("/v1/models", { headers: requestHeaders({ Accept: "application/json" }) });
      if (response.status === 401) {
        const error = await responseError(response);
        ui.modelName.textContent = "API key needed";
        ui.modelName.classList.add("is-missing");
        askForKey(
          memoryKey
            ? `The server refused this key (${error.message}). Enter the right one.`
            : "This server needs an API key (it was started with --api-key). Enter it to chat.",
        );
        return;
      }
      if (!response.ok) throw await responseError(response);
      const body = await response.json();
      const card = body && Array.isArray(body.data) ? body.data[0] : null;
      if (!card || !card.id) throw new Error("the server lists no model");
      state.model = card.id;
      state.modalities = Array.isArray(card.modalities) ? card.modalities : [];
    } catch (error) {
      ui.modelName.textContent = "unavailable";
      ui.modelName.classList.add("is-missing");
      showPageError(`Could not ask the server for its model: ${describe(error)}`, true);
      return;
    }
    ui.modelName.textContent = state.model;
    document.title = `${state.model} · anymodal chat`;
    if (!ui.keyForm.hidden && memoryKey) hideKeyForm();
    renderModalities();
    revalidateAttachments();
  }

  function renderModalities() {
    ui.modalities.replaceChildren(
      ...state.modalities.map((modality) =>
        element("li", {
          className: "modality-chip",
          "data-modality": modality.name,
          title: (modality.file_kinds || []).join(" ") || "any file",
          text: modality.name,
        }),
      ),
    );
    const kinds = [...new Set(state.modalities.flatMap((modality) => modality.file_kinds || []))];
    ui.fileInput.accept = kinds.join(",");
    ui.accepts.textContent = kinds.length
      ? `Files: ${kinds.join(" ")} · drop them anywhere on the page`
      : "This model takes text only.";
    ui.attach.disabled = kinds.length === 0;
  }

  // -- the API key ------------------------------------------------------------------------------

  function askForKey(message) {
    ui.keyNote.textContent = message;
    ui.keyForm.hidden = false;
    ui.keyToggle.setAttribute("aria-expanded", "true");
    ui.keyInput.value = memoryKey;
    ui.keyInput.focus();
  }

  function hideKeyForm() {
    ui.keyForm.hidden = true;
    ui.keyToggle.setAttribute("aria-expanded", "false");
  }

  ui.keyToggle.addEventListener("click", () => {
    if (ui.keyForm.hidden) {
      askForKey("The key this server was started with (--api-key); leave it empty for none.");
    } else {
      hideKeyForm();
    }
  });

  ui.keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    storeKey(ui.keyInput.value.trim());
    showNotice(memoryKey ? "API key set for this tab." : "API key cleared.");
    hideKeyForm();
    loadModels();
  });

  // -- attachments ------------------------------------------------------------------------------

  // The modality a file most likely is, among those that take its suffix: one named in the file's
  // name (near_object_depth.png), else the one its media type names (image/png), else one whose
  // first file kind it is, else the first.
  function guessModality(file, suffix, candidates) {
    if (candidates.length <= 1) return candidates.length ? candidates[0].name : null;
    const words = file.name.toLowerCase().split(/[^a-z0-9]+/);
    const named = candidates.find((modality) => words.includes(modality.name.toLowerCase()));
    if (named) return named.name;
    const major = (file.type || MEDIA_TYPES[suffix] || "").split("/")[0];
    const typed = candidates.find((modality) => modality.name === major);
    if (typed) return typed.name;
    const primary = candidates.find((modality) => (modality.file_kinds || [])[0] === suffix);
    return (primary || candidates[0]).name;
  }

  function readDataUrl(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result));
      reader.onerror = () => reject(new Error(`could not read ${file.name}: ${reader.error}`));
      reader.readAsDataURL(file);
    });
  }

  function addFiles(fileList) {
    const files = Array.from(fileList || []);
    if (!files.length) return;
    if (!state.model) {
      showNotice("The server's modalities are not known yet: wait for the model to load.", true);
      return;
    }
    const refused = [];
    for (const file of files) {
      const suffix = suffixOf(file.name);
      const candidates = state.modalities.filter((modality) => (modality.file_kinds || []).includes(suffix));
      if (!candidates.length) {
        refused.push(`${file.name} (no installed modality takes ${suffix || "files without a suffix"})`);
        continue;
      }
      const payload = readDataUrl(file);
      payload.catch(() => {}); // reported when the message is sent
      state.attachments.push({
        id: `attachment-${nextId++}`,
        file,
        name: file.name,
        suffix,
        candidates: candidates.map((modality) => modality.name),
        modality: guessModality(file, suffix, candidates),
        url: URL.createObjectURL(file),
        payload,
      });
    }
    showNotice(refused.length ? `Not attached: ${refused.join("; ")}.` : "", refused.length > 0);
    renderAttachments();
    scrollToEnd(true); // the composer grew: keep the conversation's end in sight
  }

  // After the modalities are (re)loaded, drop attachments that no modality takes any more.
  function revalidateAttachments() {
    const before = state.attachments.length;
    state.attachments = state.attachments.filter((item) => {
      const keep = item.candidates.some((name) => modalityInfo(name));
      if (!keep) URL.revokeObjectURL(item.url);
      return keep;
    });
    if (state.attachments.length !== before) renderAttachments();
  }

  function removeAttachment(id) {
    const index = state.attachments.findIndex((item) => item.id === id);
    if (index < 0) return;
    const [item] = state.attachments.splice(index, 1);
    URL.revokeObjectURL(item.url);
    renderAttachments();
    showNotice(`Removed ${item.name}.`);
    ui.prompt.focus();
  }

  function previewKind(item) {
    if (AUDIO_PREVIEW.has(item.suffix)) return "audio";
    if (VIDEO_PREVIEW.has(item.suffix)) return item.modality === "audio" ? "audio" : "video";
    if (IMAGE_PREVIEW.has(item.suffix)) return "image";
    return "file";
  }

  function fileChip(item) {
    const label = item.suffix || "file";
    return element("span", { className: "file-chip", "data-testid": "file-chip", text: label });
  }

  // The preview of an attached file: an image, a video or an audio player, or a chip with its kind.
  function preview(item) {
    const kind = previewKind(item);
    if (kind === "image") {
      const image = element("img", {
        src: item.url,
        alt: `${item.name} (${item.modality})`,
        "data-testid": "preview-image",
        decoding: "async",
      });
      image.addEventListener("error", () => image.replaceWith(fileChip(item)), { once: true });
      return image;
    }
    if (kind === "video") {
      return element("video", {
        src: item.url,
        controls: true,
        muted: true,
        preload: "metadata",
        playsinline: true,
        "aria-label": `${item.name} (${item.modality})`,
        "data-testid": "preview-video",
      });
    }
    if (kind === "audio") {
      return element("audio", {
        src: item.url,
        controls: true,
        preload: "metadata",
        "aria-label": `${item.name} (${item.modality})`,
        "data-testid": "preview-audio",
      });
    }
    return fileChip(item);
  }

  function renderAttachments() {
    ui.attachments.replaceChildren(...state.attachments.map(attachmentCard));
    ui.attachments.hidden = state.attachments.length === 0;
  }

  function attachmentCard(item) {
    const kind = previewKind(item);
    const meta = element("div", { className: "attachment-meta" });
    meta.append(element("span", { className: "attachment-name", title: item.name, text: item.name }));
    if (item.candidates.length > 1) {
      const selectId = `${item.id}-modality`;
      const select = element("select", {
        id: selectId,
        className: "modality-select",
        "data-testid": "modality-select",
      });
      for (const name of item.candidates) {
        select.append(element("option", { value: name, selected: name === item.modality, text: name }));
      }
      select.value = item.modality;
      select.addEventListener("change", () => {
        item.modality = select.value;
        renderAttachments();
        const again = document.getElementById(selectId);
        if (again) again.focus();
      });
      meta.append(
        element("label", { className: "visually-hidden", for: selectId, text: `Modality of ${item.name}` }),
        select,
      );
    } else {
      const tag = { className: "modality-tag", "data-testid": "modality", text: item.modality };
      meta.append(element("span", tag));
    }
    const remove = element("button", {
      type: "button",
      className: "remove",
      "aria-label": `Remove ${item.name}`,
      title: `Remove ${item.name}`,
      "data-testid": "remove-attachment",
      text: "×",
    });
    remove.addEventListener("click", () => removeAttachment(item.id));
    return element(
      "div",
      {
        className: `attachment kind-${kind}`,
        role: "listitem",
        "data-testid": "attachment",
        "data-name": item.name,
        "data-modality": item.modality,
      },
      element("div", { className: "attachment-preview" }, preview(item)),
      meta,
      remove,
    );
  }

  ui.attach.addEventListener("click", () => ui.fileInput.click());
  ui.fileInput.addEventListener("change", () => {
    addFiles(ui.fileInput.files);
    ui.fileInput.value = "";
  });

  // Files dropped anywhere on the page are attached.
  let dragDepth = 0;
  const carriesFiles = (event) =>
    event.dataTransfer && Array.from(event.dataTransfer.types || []).includes("Files");
  document.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    dragDepth += 1;
    ui.overlay.hidden = false;
  });
  document.addEventListener("dragover", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  document.addEventListener("dragleave", (event) => {
    if (!carriesFiles(event)) return;
    dragDepth = Math.max(0, dragDepth - 1);
    if (dragDepth === 0) ui.overlay.hidden = true;
  });
  document.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    dragDepth = 0;
    ui.overlay.hidden = true;
    addFiles(event.dataTransfer.files);
  });

  // -- the request ------------------------------------------------------------------------------

  function mediaTypeFor(item) {
    if (MEDIA_TYPES[item.suffix]) return MEDIA_TYPES[item.suffix];
    const info = modalityInfo(item.modality);
    // The server gives a file of no particular type the modality's first kind.
    if (info && (info.file_kinds || [])[0] === item.suffix) return "application/octet-stream";
    return item.file.type || "application/octet-stream";
  }

  // One attached file as a content part: image_url, input_audio, or <modality>_url.
  async function contentPart(item) {
    const read = await item.payload;
    const comma = read.indexOf(",");
    const base64 = comma >= 0 ? read.slice(comma + 1) : "";
    const info = modalityInfo(item.modality);
    const types = info ? info.part_types || [] : [];
    if (INPUT_AUDIO_FORMATS.has(item.suffix) && types.includes("input_audio")) {
      return { type: "input_audio", input_audio: { data: base64, format: item.suffix.slice(1) } };
    }
    const own = `${item.modality}_url`;
    const type = types.includes(own) ? own : types.find((name) => name !== "input_audio") || own;
    return { type, [type]: { url: `data:${mediaTypeFor(item)};base64,${base64}` } };
  }

  async function userContent(exchange) {
    if (!exchange.media.length) return exchange.text;
    const parts = await Promise.all(exchange.media.map(contentPart));
    if (exchange.text) parts.push({ type: "text", text: exchange.text });
    return parts;
  }

  // The whole conversation up to ``current``: an exchange that failed is shown, not sent again.
  async function conversationMessages(current) {
    const messages = [];
    for (const exchange of state.exchanges) {
      if (exchange !== current && exchange.status === "error") continue;
      messages.push({ role: "user", content: await userContent(exchange) });
      if (exchange === current) break;
      messages.push({ role: "assistant", content: exchange.reply });
    }
    return messages;
  }

  // The data of each Server-Sent Event of a response body, as it arrives.
  async function* eventData(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    const boundary = /\r\n\r\n|\n\n|\r\r/;
    try {
      for (;;) {
        let chunk;
        try {
          chunk = await reader.read();
        } catch (error) {
          if (error && error.name === "AbortError") throw error;
          const why = error && error.message;
          throw new NetworkError(`the connection to the server broke off during the reply (${why})`);
        }
        const { value, done } = chunk;
        if (done) break;
        buffer += value;
        let match = boundary.exec(buffer);
        while (match) {
          const data = dataOf(buffer.slice(0, match.index));
          buffer = buffer.slice(match.index + match[0].length);
          if (data !== null) yield data;
          match = boundary.exec(buffer);
        }
      }
      const last = dataOf(buffer);
      if (last !== null) yield last;
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  function dataOf(block) {
    const data = [];
    for (const line of block.split(/\r\n|\n|\r/)) {
      if (line.startsWith("data:")) data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
    }
    return data.length ? data.join("\n") : null;
  }

  async function readReply(response, exchange) {
    const type = response.headers.get("Content-Type") || "";
    if (!type.includes("text/event-stream")) {
      const body = await response.json();
      if (body && body.error) {
        throw new ApiError(body.error.message || "the server failed", null, body.error.code || null);
      }
      appendReply(exchange, body.choices?.[0]?.message?.content ?? "");
      return;
    }
    for await (const data of eventData(response.body)) {
      if (data === "[DONE]") return;
      let event;
      try {
        event = JSON.parse(data);
      } catch {
        throw new Error(`the server sent an event that is not JSON: ${data.slice(0, 120)}`);
      }
      if (event.error) {
        throw new ApiError(event.error.message || "the reply failed", null, event.error.code || null);
      }
      const choice = Array.isArray(event.choices) ? event.choices[0] : null;
      if (!choice) continue; // the usage chunk
      const piece = choice.delta ? choice.delta.content : null;
      if (piece) appendReply(exchange, piece);
      if (choice.finish_reason) exchange.finishReason = choice.finish_reason;
    }
    throw new Error("the reply was cut off: the stream ended without its last event ([DONE])");
  }

  async function send() {
    if (state.controller) return;
    const text = ui.prompt.value.trim();
    if (!text && !state.attachments.length) {
      showNotice("Type a question, or attach a file.", true);
      ui.prompt.focus();
      return;
    }
    const exchange = {
      text,
      media: state.attachments.splice(0),
      reply: "",
      status: "streaming",
      error: null,
      chunks: 0,
      finishReason: null,
      view: null,
    };
    ui.prompt.value = "";
    fitPrompt();
    renderAttachments();
    showNotice("");
    state.exchanges.push(exchange);
    renderExchange(exchange);

    const controller = new AbortController();
    state.controller = controller;
    setBusy(true);
    try {
      const body = { messages: await conversationMessages(exchange), stream: true };
      if (state.model) body.model = state.model;
      const response = await fetchApi("/v1/chat/completions", {
        method: "POST",
        headers: requestHeaders({ "Content-Type": "application/json", Accept: "text/event-stream" }),
        body: JSON.stringify(body),
        signal: controller.signal,
      });
      if (!response.ok) throw await responseError(response);
      await readReply(response, exchange);
      exchange.status = "done";
    } catch (error) {
      if (controller.signal.aborted) {
        exchange.status = "stopped";
      } else {
        exchange.status = "error";
        exchange.error = describe(error);
        if (error instanceof ApiError && error.status === 401) {
          askForKey("The server needs an API key for this: enter it, then send again.");
        }
      }
    } finally {
      if (state.controller === controller) {
        state.controller = null;
        setBusy(false);
      }
      finishExchange(exchange);
    }
  }

  function setBusy(busy) {
    ui.send.hidden = busy;
    ui.stop.hidden = !busy;
    ui.composer.setAttribute("aria-busy", busy ? "true" : "false");
    if (!busy && document.activeElement === ui.stop) ui.prompt.focus();
  }

  // -- the conversation -------------------------------------------------------------------------

  function scrollToEnd(force = false) {
    const view = ui.conversation;
    const nearEnd = view.scrollHeight - view.scrollTop - view.clientHeight < 120;
    if (force || nearEnd) view.scrollTop = view.scrollHeight;
  }

  function renderExchange(exchange) {
    ui.empty.hidden = true;
    const media = exchange.media.map((item) =>
      element(
        "figure",
        { className: `sent-media kind-${previewKind(item)}`, "data-testid": "sent-media" },
        preview(item),
        element(
          "figcaption",
          {},
          element("span", { className: "caption-name", text: item.name }),
          element("span", { className: "modality-tag", text: item.modality }),
        ),
      ),
    );
    const user = element(
      "article",
      { className: "message user", "data-testid": "user-message", "aria-label": "You" },
      element(
        "div",
        { className: "bubble" },
        ...(media.length ? [element("div", { className: "media-row" }, ...media)] : []),
        ...(exchange.text ? [element("p", { className: "text", text: exchange.text })] : []),
      ),
    );
    const textNode = document.createTextNode("");
    const reply = element("p", {
      className: "reply",
      "data-testid": "reply",
      "data-chunks": "0",
      "data-state": "streaming",
    });
    reply.append(textNode);
    const status = element("div", { className: "reply-status" });
    const assistant = element(
      "article",
      {
        className: "message assistant",
        "data-testid": "assistant-message",
        "aria-label": state.model || "Model",
        "aria-busy": "true",
      },
      element("div", { className: "avatar", "aria-hidden": "true" }),
      element("div", { className: "bubble" }, reply, status),
    );
    ui.conversation.append(user, assistant);
    exchange.view = { user, assistant, reply, textNode, status };
    scrollToEnd(true);
  }

  function appendReply(exchange, piece) {
    exchange.reply += piece;
    exchange.chunks += 1;
    if (!exchange.view) return;
    exchange.view.textNode.appendData(piece);
    exchange.view.reply.dataset.chunks = String(exchange.chunks);
    scrollToEnd();
  }

  function finishExchange(exchange) {
    const view = exchange.view;
    if (!view) return;
    view.assistant.setAttribute("aria-busy", "false");
    view.reply.dataset.state = exchange.status;
    view.assistant.dataset.state = exchange.status;
    if (exchange.status === "stopped") {
      const note = { className: "stopped", "data-testid": "stopped", text: "Stopped." };
      view.status.replaceChildren(element("p", note));
    } else if (exchange.status === "error") {
      const detail = "This message was not answered and is left out of the conversation.";
      view.status.replaceChildren(errorLine(exchange.error, detail));
    } else if (exchange.finishReason === "length") {
      const note = { className: "stopped", text: "The reply reached the length limit and was cut there." };
      view.status.replaceChildren(element("p", note));
    }
    if (exchange.status !== "done" && !exchange.reply) view.reply.hidden = true;
    scrollToEnd();
  }

  function errorLine(message, detail = "") {
    return element(
      "div",
      { className: "error", role: "alert", "data-testid": "error" },
      element("strong", { text: "Error: " }),
      element("span", { className: "error-message", "data-testid": "error-message", text: message }),
      ...(detail ? [element("span", { className: "error-detail", text: ` ${detail}` })] : []),
    );
  }

  // An error that belongs to no message (the model list could not be read), shown in the conversation.
  function showPageError(message, retry = false) {
    ui.empty.hidden = true;
    const attributes = { className: "message system", "data-testid": "page-error" };
    const box = element("article", attributes, errorLine(message));
    if (retry) {
      const again = element("button", { type: "button", className: "button quiet", text: "Try again" });
      again.addEventListener("click", () => {
        box.remove();
        if (!ui.conversation.querySelector(".message")) ui.empty.hidden = false;
        loadModels();
      });
      box.append(again);
    }
    ui.conversation.append(box);
    scrollToEnd(true);
  }

  function reset() {
    if (state.controller) state.controller.abort();
    for (const exchange of state.exchanges) {
      for (const item of exchange.media) URL.revokeObjectURL(item.url);
      exchange.view = null;
    }
    for (const item of state.attachments) URL.revokeObjectURL(item.url);
    state.exchanges = [];
    state.attachments = [];
    ui.conversation.replaceChildren(ui.empty);
    ui.empty.hidden = false;
    renderAttachments();
    ui.prompt.value = "";
    fitPrompt();
    showNotice("The conversation was cleared.");
    ui.prompt.focus();
  }

  // -- the composer -----------------------------------------------------------------------------

  function fitPrompt() {
    ui.prompt.style.height = "auto";
    ui.prompt.style.height = `${Math.min(ui.prompt.scrollHeight, 200)}px`;
  }

  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  ui.prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  ui.prompt.addEventListener("input", fitPrompt);
  ui.stop.addEventListener("click", () => {
    if (state.controller) state.controller.abort();
  });
  ui.reset.addEventListener("click", reset);

  renderAttachments();
  loadModels();
  ui.prompt.focus();
})();
