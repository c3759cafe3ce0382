// MemeGen page: pick a photo, POST it to the API, show the meme, its faces and scores.
// The server keeps no upload, so every redraw re-sends the File object held here.
"use strict";

(() => {
  const EDIT_DELAY_MS = 600;
  const FORMAT = "png"; // lossless, so the PNG download is exact and the JPEG one is one step
  // Animated uploads come back animated in their own kind; a still one, GIF or WebP too,
  // comes back as FORMAT (see outputFormat).
  const ANIMATED_FORMATS = { "image/gif": "gif", "image/webp": "webp" };
  // A re-roll names the captions picked lately, so the server picks one not yet seen
  // (the API takes at most this many).
  const RECENT_LIMIT = 10;
  const MOOD_NAMES = { noface: "No face found", group: "Group photo", mixed: "Mixed feelings" };

  const byId = (id) => document.getElementById(id);
  const app = byId("app");
  const ui = {
    error: byId("error"),
    status: byId("status"),
    dropzone: byId("dropzone"),
    dropzoneTitle: byId("dropzone-title"),
    dropzoneHint: byId("dropzone-hint"),
    thumb: byId("thumb"),
    chooseButton: byId("choose-button"),
    cameraButton: byId("camera-button"),
    fileInput: byId("file-input"),
    cameraInput: byId("camera-input"),
    stage: byId("stage"),
    placeholder: byId("placeholder"),
    memeWrap: byId("meme-wrap"),
    memeImage: byId("meme-image"),
    faceBoxes: byId("face-boxes"),
    busy: byId("busy"),
    busyText: byId("busy-text"),
    mood: byId("mood"),
    showBoxes: byId("show-boxes"),
    downloadPng: byId("download-png"),
    downloadJpeg: byId("download-jpeg"),
    downloadWebp: byId("download-webp"),
    downloadGif: byId("download-gif"),
    captionForm: byId("caption-form"),
    top: byId("top-input"),
    bottom: byId("bottom-input"),
    reroll: byId("reroll-button"),
    styles: Array.from(document.querySelectorAll('input[name="style"]')),
    facesSummary: byId("faces-summary"),
    faceList: byId("face-list"),
  };
  const CREATE_URL = app.dataset.createUrl;
  const MAX_BYTES = Number(app.dataset.maxUploadBytes);
  const LABELS = app.dataset.labels.split(",");

  const state = {
    file: null, // the chosen photo, kept to re-send on every redraw
    format: null, // a promise of the format to ask for, read once per photo
    // The photo the meme on screen was made from, to go back to when the server refuses
    // a newer one: { file, format, seed, thumbUrl }.
    accepted: null,
    seed: 0,
    thumbUrl: null,
    request: 0, // number of the newest request; older answers are dropped
    controller: null,
    editTimer: 0,
    recent: [], // captions the server picked lately, oldest first, as "TOP | BOTTOM"
  };

  // ---- messages -------------------------------------------------------------

  function showError(message) {
    ui.error.textContent = message;
  }

  function clearError() {
    ui.error.textContent = "";
  }

  function announce(message) {
    ui.status.textContent = message;
  }

  function size(bytes) {
    return bytes < 1048576 ? `${Math.ceil(bytes / 1024)} KB` : `${(bytes / 1048576).toFixed(1)} MB`;
  }

  // Sizes that differ even when rounding would make a file just over the limit look as big.
  function overLimit(bytes, limit) {
    const [shown, allowed] =
      size(bytes) === size(limit)
        ? [`${bytes.toLocaleString("en")} bytes`, `${limit.toLocaleString("en")} bytes`]
        : [size(bytes), size(limit)];
    return `This photo is ${shown}; the limit is ${allowed}.`;
  }

  // ---- choosing a photo -----------------------------------------------------

  function randomSeed() {
    const words = new Uint32Array(1);
    crypto.getRandomValues(words);
    return words[0];
  }

  function pickFile(file) {
    if (!file) return;
    if (file.type && !file.type.startsWith("image/")) {
      showError(`"${file.name}" is not an image. Pick a photo (JPEG, PNG, WebP…).`);
      return;
    }
    if (file.size > MAX_BYTES) {
      showError(overLimit(file.size, MAX_BYTES));
      return;
    }
    dropPendingThumb();
    state.file = file;
    state.format = outputFormat(file);
    state.seed = randomSeed();
    state.thumbUrl = URL.createObjectURL(file);
    showPhotoCard(file, state.thumbUrl);
    // Until the server has read the new photo, an edit would send the old photo's caption
    // with it: keep the controls still.
    setEditing(false);
    if (ui.memeWrap.hidden) {
      // First photo: show it at once, dimmed under the spinner, while the meme is made.
      ui.placeholder.hidden = true;
      ui.memeWrap.hidden = false;
      ui.memeImage.src = state.thumbUrl;
      ui.memeImage.alt = "Your photo, being turned into a meme";
    }
    generate({ busyText: "Reading faces…", newPhoto: true });
  }

  function showPhotoCard(file, thumbUrl) {
    ui.thumb.src = thumbUrl;
    ui.thumb.hidden = false;
    ui.dropzone.classList.add("has-photo");
    ui.dropzoneTitle.textContent = file.name || "Pasted photo";
    ui.dropzoneHint.textContent = `${size(file.size)} · drop or paste another to swap`;
    ui.chooseButton.textContent = "Choose another";
  }

  // The preview of a photo the server has not accepted is no longer needed.
  function dropPendingThumb() {
    if (state.thumbUrl && state.thumbUrl !== (state.accepted && state.accepted.thumbUrl)) {
      URL.revokeObjectURL(state.thumbUrl);
    }
  }

  function accept() {
    if (state.accepted && state.accepted.thumbUrl !== state.thumbUrl) {
      URL.revokeObjectURL(state.accepted.thumbUrl);
    }
    const { file, format, seed, thumbUrl } = state;
    state.accepted = { file, format, seed, thumbUrl };
  }

  // The server refused a new photo: go back to the one the meme on screen was made from.
  function restoreAcceptedPhoto() {
    if (!state.accepted) {
      resetToEmpty();
      return;
    }
    dropPendingThumb();
    Object.assign(state, state.accepted);
    showPhotoCard(state.file, state.thumbUrl);
    setEditing(true);
  }

  // The format to ask for: an animation's own, else lossless FORMAT. Most GIFs and WebPs
  // are still pictures, and one stored as GIF or WebP would lose colours for nothing.
  async function outputFormat(file) {
    const kind = ANIMATED_FORMATS[file.type];
    if (!kind) return FORMAT;
    const bytes = new Uint8Array(await file.arrayBuffer());
    return (kind === "gif" ? gifIsAnimated(bytes) : webpIsAnimated(bytes)) ? kind : FORMAT;
  }

  // An extended WebP header (VP8X) has an animation flag.
  function webpIsAnimated(bytes) {
    const chunk = String.fromCharCode(...bytes.subarray(12, 16));
    return chunk === "VP8X" && (bytes[20] & 0x02) !== 0;
  }

  // A GIF is animated when it holds a second image: walk its blocks until one shows up.
  function gifIsAnimated(bytes) {
    const tableSize = (flags) => (flags & 0x80 ? 3 << ((flags & 7) + 1) : 0);
    let at = 13 + tableSize(bytes[10]); // after the header, screen descriptor, colour table
    const skipSubBlocks = () => {
      while (at < bytes.length && bytes[at] !== 0) at += bytes[at] + 1;
      at += 1;
    };
    let images = 0;
    while (at < bytes.length) {
      if (bytes[at] === 0x21) {
        at += 2; // extension introducer and label
        skipSubBlocks();
      } else if (bytes[at] === 0x2c) {
        if (++images > 1) return true;
        at += 10 + tableSize(bytes[at + 9]) + 1; // descriptor, colour table, LZW code size
        skipSubBlocks();
      } else {
        break; // the trailer, or damage the server will judge
      }
    }
    return false;
  }

  // A new photo the server refused leaves nothing to edit: back to the empty page.
  function resetToEmpty() {
    dropPendingThumb();
    state.file = null;
    state.thumbUrl = null;
    ui.thumb.hidden = true;
    ui.thumb.removeAttribute("src");
    ui.dropzone.classList.remove("has-photo");
    ui.dropzoneTitle.textContent = "Drop a photo here";
    ui.dropzoneHint.textContent = "or paste one, or pick one below";
    ui.chooseButton.textContent = "Choose a photo";
    ui.memeWrap.hidden = true;
    ui.memeImage.removeAttribute("src");
    ui.faceBoxes.replaceChildren();
    ui.placeholder.hidden = false;
    ui.mood.hidden = true;
    for (const link of [ui.downloadPng, ui.downloadJpeg, ui.downloadWebp, ui.downloadGif]) {
      link.removeAttribute("href");
    }
    ui.downloadGif.hidden = true;
    ui.top.value = "";
    ui.bottom.value = "";
    setEditing(false);
    ui.faceList.replaceChildren();
    ui.facesSummary.textContent = "Pick a photo to see what MemeGen reads in it.";
  }

  // Some photos the server reads (TIFF, CMYK JPEG…) the browser cannot show: hide its
  // local preview rather than a broken-image icon; the meme will show fine.
  ui.thumb.addEventListener("error", () => {
    ui.thumb.hidden = true;
  });
  ui.memeImage.addEventListener("error", () => {
    if (!ui.memeImage.src.startsWith("blob:")) return;
    ui.memeWrap.hidden = true;
    ui.placeholder.hidden = false;
  });

  ui.chooseButton.addEventListener("click", () => ui.fileInput.click());
  ui.cameraButton.addEventListener("click", () => ui.cameraInput.click());
  for (const input of [ui.fileInput, ui.cameraInput]) {
    input.addEventListener("change", () => {
      pickFile(input.files[0]);
      input.value = ""; // choosing the same file again must fire "change" again
    });
  }

  // Dropping a file anywhere on the page works; the drop zone lights up to show it.
  // Drags of anything else (text into a caption field) keep their usual behaviour.
  const carriesFiles = (event) =>
    Boolean(event.dataTransfer) && Array.from(event.dataTransfer.types).includes("Files");
  let dragDepth = 0;
  document.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event)) return;
    dragDepth += 1;
    ui.dropzone.classList.add("dragging");
  });
  document.addEventListener("dragleave", (event) => {
    if (!carriesFiles(event)) return;
    dragDepth = Math.max(0, dragDepth - 1);
    if (dragDepth === 0) ui.dropzone.classList.remove("dragging");
  });
  document.addEventListener("dragover", (event) => {
    if (carriesFiles(event)) event.preventDefault();
  });
  document.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault(); // never let the browser navigate away to the dropped file
    dragDepth = 0;
    ui.dropzone.classList.remove("dragging");
    pickFile(event.dataTransfer.files[0]);
  });

  document.addEventListener("paste", (event) => {
    const items = event.clipboardData ? Array.from(event.clipboardData.items) : [];
    const item = items.find((entry) => entry.kind === "file" && entry.type.startsWith("image/"));
    if (!item) return; // plain text pastes into the caption fields as usual
    event.preventDefault();
    pickFile(item.getAsFile());
  });

  // ---- talking to the API ---------------------------------------------------

  function selectedStyle() {
    const checked = ui.styles.find((radio) => radio.checked);
    return checked ? checked.value : "classic";
  }

  // Downloads are off while the meme on screen is about to change, so a click never saves
  // a meme without the caption just typed.
  function setDownloads(enabled) {
    for (const link of [ui.downloadPng, ui.downloadJpeg, ui.downloadWebp, ui.downloadGif]) {
      if (enabled && link.hasAttribute("href")) link.removeAttribute("aria-disabled");
      else link.setAttribute("aria-disabled", "true");
    }
  }

  function setEditing(enabled) {
    ui.top.disabled = !enabled;
    ui.bottom.disabled = !enabled;
    ui.reroll.disabled = !enabled;
    for (const radio of ui.styles) radio.disabled = !enabled;
    setDownloads(enabled);
  }

  function setBusy(busy, text) {
    ui.busy.hidden = !busy;
    ui.stage.setAttribute("aria-busy", String(busy));
    ui.stage.classList.toggle("is-busy", busy);
    if (text) ui.busyText.textContent = text;
  }

  // POST the kept photo. Without top/bottom the server picks a caption for the mood.
  function remember(caption) {
    const line = `${caption.top} | ${caption.bottom}`;
    state.recent = state.recent.filter((seen) => seen !== line);
    state.recent.push(line);
    state.recent = state.recent.slice(-RECENT_LIMIT);
  }

  async function generate({
    top,
    bottom,
    busyText,
    fromEdit = false,
    newPhoto = false,
    avoidRecent = false,
  }) {
    if (!state.file) return;
    clearTimeout(state.editTimer);
    const number = ++state.request;
    if (state.controller) state.controller.abort();
    const controller = new AbortController();
    state.controller = controller;

    const body = new FormData();
    body.append("image", state.file, state.file.name || "photo");
    if (top !== undefined) body.append("top", top);
    if (bottom !== undefined) body.append("bottom", bottom);
    body.append("seed", String(state.seed));
    const style = selectedStyle();
    body.append("style", style);
    body.append("format", await state.format);
    if (avoidRecent) for (const line of state.recent) body.append("recent", line);

    clearError();
    setDownloads(false);
    setBusy(true, busyText || "Redrawing…");
    try {
      const response = await fetch(CREATE_URL, {
        method: "POST",
        body,
        signal: controller.signal,
      });
      const payload = await response.json().catch(() => null);
      if (!response.ok) {
        const message = payload && payload.error && payload.error.message;
        throw new Error(message || `The server answered ${response.status}; please try again.`);
      }
      await preload(payload.image_url);
      if (number !== state.request) return;
      showMeme(payload, { keepCaption: fromEdit, style });
      accept();
    } catch (error) {
      if (error.name === "AbortError" || number !== state.request) return;
      showError(
        error instanceof TypeError
          ? "Could not reach MemeGen. Check your connection and try again."
          : error.message,
      );
      announce("");
      if (newPhoto) restoreAcceptedPhoto();
      else setDownloads(true); // the meme on screen is still the last one made
    } finally {
      if (number === state.request) setBusy(false);
    }
  }

  // Decode the new meme before swapping it in, so the old one never flashes blank.
  async function preload(url) {
    const image = new Image();
    image.src = url;
    try {
      await image.decode();
    } catch {
      // The <img> will report its own failure; nothing to add here.
    }
  }

  // ---- showing the result ---------------------------------------------------

  function downloadUrl(imageUrl, extension) {
    return `${imageUrl.replace(/\.[a-z]+$/, `.${extension}`)}?download=1`;
  }

  function enableLink(link, href) {
    link.href = href;
    link.removeAttribute("aria-disabled");
  }

  function showMeme(meme, { keepCaption, style }) {
    ui.placeholder.hidden = true;
    ui.memeWrap.hidden = false;
    ui.memeImage.src = meme.image_url;
    ui.memeImage.width = meme.width;
    ui.memeImage.height = meme.height;
    ui.memeImage.alt = `Meme: ${meme.caption.top} / ${meme.caption.bottom}`;
    drawBoxes(meme, style);
    showFaces(meme.faces, meme.mood);

    enableLink(ui.downloadPng, downloadUrl(meme.image_url, "png"));
    enableLink(ui.downloadJpeg, downloadUrl(meme.image_url, "jpg"));
    // WebP keeps an animation, as GIF does; PNG and JPEG hold the first frame.
    enableLink(ui.downloadWebp, downloadUrl(meme.image_url, "webp"));
    ui.downloadGif.hidden = meme.frames <= 1;
    if (meme.frames > 1) ui.downloadGif.href = downloadUrl(meme.image_url, "gif");

    if (!keepCaption) {
      // After an edit the fields already hold what was sent, and may hold newer typing.
      ui.top.value = meme.caption.top;
      ui.bottom.value = meme.caption.bottom;
      remember(meme.caption);
    }
    setEditing(true);

    const moodName = MOOD_NAMES[meme.mood] || `Mood: ${meme.mood}`;
    ui.mood.hidden = false;
    ui.mood.textContent = moodName;
    ui.mood.dataset.expression = meme.mood;
    const count = meme.faces.length;
    announce(`Meme ready: ${count} face${count === 1 ? "" : "s"}. ${moodName}.`);
  }

  function percent(value, total) {
    return `${((value / total) * 100).toFixed(3)}%`;
  }

  function drawBoxes(meme, style) {
    ui.faceBoxes.replaceChildren();
    // The faces style writes a word under each face, where the tags usually go.
    ui.faceBoxes.classList.toggle("tags-above", style === "faces");
    meme.faces.forEach((face, index) => {
      const [x1, y1, x2, y2] = face.box;
      const box = document.createElement("div");
      box.className = "face-box";
      box.dataset.expression = face.expression;
      box.dataset.testid = "face-box";
      box.style.left = percent(x1, meme.width);
      box.style.top = percent(y1, meme.height);
      box.style.width = percent(x2 - x1, meme.width);
      box.style.height = percent(y2 - y1, meme.height);
      const tag = document.createElement("span");
      tag.className = "face-tag";
      const word = document.createElement("span");
      word.className = "face-tag-word";
      word.textContent = ` · ${face.expression}`;
      tag.append(String(index + 1), word);
      box.append(tag);
      ui.faceBoxes.append(box);
    });
  }

  function showFaces(faces, mood) {
    ui.faceList.replaceChildren();
    if (faces.length === 0) {
      ui.facesSummary.textContent =
        "No face found, so the caption is one for a face-less photo.";
      return;
    }
    ui.facesSummary.textContent =
      faces.length === 1
        ? "One face. The bars show how sure MemeGen is of each expression."
        : `${faces.length} faces, largest first; the caption is ${
            mood === "group" ? "for the whole group" : "for face 1"
          }.`;
    faces.forEach((face, index) => ui.faceList.append(faceCard(face, index)));
  }

  function faceCard(face, index) {
    const item = document.createElement("li");
    item.className = "face-card";
    item.dataset.testid = "face-card";

    const head = document.createElement("div");
    head.className = "face-head";
    const title = document.createElement("span");
    title.className = "face-number";
    title.textContent = `Face ${index + 1}`;
    const top = document.createElement("strong");
    top.className = "face-expression";
    top.dataset.expression = face.expression;
    top.dataset.testid = "face-expression";
    top.textContent = face.expression;
    const share = document.createElement("span");
    share.className = "face-share";
    share.textContent = `${Math.round((face.scores[face.expression] || 0) * 100)}%`;
    head.append(title, top, share);

    const bars = document.createElement("ul");
    bars.className = "bars";
    bars.setAttribute("aria-label", `Expression scores of face ${index + 1}`);
    for (const label of LABELS) {
      const value = face.scores[label] || 0;
      const row = document.createElement("li");
      row.className = "bar-row";
      row.dataset.expression = label;
      if (label === face.expression) row.classList.add("is-top");
      const name = document.createElement("span");
      name.className = "bar-label";
      name.textContent = label;
      const track = document.createElement("span");
      track.className = "bar-track";
      track.setAttribute("aria-hidden", "true");
      const fill = document.createElement("span");
      fill.className = "bar-fill";
      fill.style.width = `${(value * 100).toFixed(1)}%`;
      track.append(fill);
      const number = document.createElement("span");
      number.className = "bar-value";
      number.textContent = `${Math.round(value * 100)}%`;
      row.append(name, track, number);
      bars.append(row);
    }
    item.append(head, bars);
    return item;
  }

  // ---- editing --------------------------------------------------------------

  function redrawWithText() {
    generate({ top: ui.top.value, bottom: ui.bottom.value, fromEdit: true });
  }

  for (const field of [ui.top, ui.bottom]) {
    field.addEventListener("input", () => {
      setDownloads(false);
      clearTimeout(state.editTimer);
      state.editTimer = setTimeout(redrawWithText, EDIT_DELAY_MS);
    });
    field.addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      event.preventDefault(); // Enter redraws at once
      redrawWithText();
    });
  }
  // A new style keeps the caption on screen (edited or not) and redraws at once.
  for (const radio of ui.styles) {
    radio.addEventListener("change", redrawWithText);
  }
  ui.captionForm.addEventListener("submit", (event) => event.preventDefault());

  ui.reroll.addEventListener("click", () => {
    state.seed = randomSeed();
    generate({ busyText: "Finding another caption…", avoidRecent: true });
  });

  ui.showBoxes.addEventListener("change", () => {
    ui.faceBoxes.hidden = !ui.showBoxes.checked;
  });

  for (const link of [ui.downloadPng, ui.downloadJpeg, ui.downloadWebp, ui.downloadGif]) {
    link.addEventListener("click", (event) => {
      if (link.getAttribute("aria-disabled") === "true") event.preventDefault();
    });
  }
})();
