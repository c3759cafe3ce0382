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
  const DOWNLOAD_LINKS = [ui.downloadPng, ui.downloadJpeg, ui.downloadWebp, ui.downloadGif];
  const CREATE_URL = app.dataset.createUrl;
  const MAX_BYTES = Number(app.dataset.maxUploadBytes);
  const MEME_LIFETIME = app.dataset.memeLifetime;
  const DOWNLOAD_TIMEOUT_MS = 60000;
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
    inFlight: null, // the newest request while it runs: { fromEdit }
    editTimer: 0, // the pending redraw after typing, 0 when none
    recent: [], // captions the server picked lately, oldest first, as "TOP | BOTTOM"
    // What the meme on screen was drawn from: { top, bottom, style }. Downloads are on
    // only while the fields and the style picker still say the same.
    shown: null,
    refocus: null, // the control that had focus when a new photo disabled it
    downloadError: null, // the message a failed download left, cleared by the next one
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
    // with it: keep the controls still. A control that had focus (a photo pasted into a
    // caption field) gets it back once they move again.
    if (editingControls().includes(document.activeElement)) state.refocus = document.activeElement;
    setEditing(false);
    if (!state.accepted) {
      // No meme yet: show the photo at once, dimmed under the spinner, while the meme is
      // made (and a photo picked while an earlier one is still read replaces its preview).
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

  // The controls a new photo disables while it is read.
  function editingControls() {
    return [ui.top, ui.bottom, ui.reroll, ...ui.styles];
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
    for (const link of DOWNLOAD_LINKS) link.removeAttribute("href");
    ui.downloadGif.hidden = true;
    ui.top.value = "";
    ui.bottom.value = "";
    state.shown = null;
    setEditing(false);
    if (state.refocus && focusIsLost()) ui.chooseButton.focus();
    state.refocus = null;
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
    // Of several files, the first image is the photo (as a paste takes it).
    const files = Array.from(event.dataTransfer.files);
    const image = files.find(isImageFile);
    if (image || files.length === 1) {
      pickFile(image || files[0]); // a lone file that is not an image: pickFile says so
    } else if (files.length > 1) {
      showError(
        `None of the ${files.length} files dropped is an image. Pick a photo (JPEG, PNG, WebP…).`,
      );
    }
  });

  // Browsers give HEIC photos no type on some systems; the file picker accepts them by name.
  function isImageFile(file) {
    return file.type ? file.type.startsWith("image/") : /\.(heic|heif)$/i.test(file.name);
  }

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
  // a meme without the caption just typed: they come on only when no redraw is waiting
  // and the fields and style still say what the meme on screen was drawn from.
  function setDownloads(enabled) {
    const current = enabled && memeMatchesControls();
    for (const link of DOWNLOAD_LINKS) {
      if (current && link.hasAttribute("href")) link.removeAttribute("aria-disabled");
      else link.setAttribute("aria-disabled", "true");
    }
  }

  function memeMatchesControls() {
    const shown = state.shown;
    return (
      Boolean(shown) &&
      !state.editTimer &&
      ui.top.value === shown.top &&
      ui.bottom.value === shown.bottom &&
      selectedStyle() === shown.style
    );
  }

  function setEditing(enabled) {
    ui.top.disabled = !enabled;
    ui.bottom.disabled = !enabled;
    ui.reroll.disabled = !enabled;
    for (const radio of ui.styles) radio.disabled = !enabled;
    setDownloads(enabled);
    if (enabled && state.refocus) {
      // Disabling the focused control dropped focus to the page: put it back.
      if (focusIsLost() || document.activeElement === state.refocus) state.refocus.focus();
      state.refocus = null;
    }
  }

  function focusIsLost() {
    return !document.activeElement || document.activeElement === document.body;
  }

  function setBusy(busy, text) {
    ui.busy.hidden = !busy;
    ui.stage.setAttribute("aria-busy", String(busy));
    ui.stage.classList.toggle("is-busy", busy);
    if (text) ui.busyText.textContent = text;
    if (busy) announce(ui.busyText.textContent);
  }

  // Abort the request in flight and take a new number: an older answer is dropped.
  function supersedeRequest() {
    state.request += 1;
    if (state.controller) state.controller.abort();
    state.controller = null;
    return state.request;
  }

  // Drop the request in flight: its answer will not be shown.
  function cancelRequest() {
    supersedeRequest();
    state.inFlight = null;
    setBusy(false);
  }

  // Keep the caption the server picked, so "another caption" can ask for a new one.
  function remember(caption) {
    const line = `${caption.top} | ${caption.bottom}`;
    state.recent = state.recent.filter((seen) => seen !== line);
    state.recent.push(line);
    state.recent = state.recent.slice(-RECENT_LIMIT);
  }

  // POST the kept photo. Without top/bottom the server picks a caption for the mood.
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
    state.editTimer = 0;
    const number = supersedeRequest();
    const controller = new AbortController();
    state.controller = controller;
    state.inFlight = { fromEdit };

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
      showMeme(payload, { keepCaption: fromEdit, style, top, bottom });
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
      if (number === state.request) {
        state.inFlight = null;
        setBusy(false);
      }
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

  // What the meme shows, for its alt text: the caption, or the photo when there is none.
  function memeAlt(meme) {
    const lines = [meme.caption.top, meme.caption.bottom].filter((line) => line.trim());
    if (lines.length > 0) return `Meme: ${lines.join(" / ")}`;
    const faces = meme.faces;
    const found =
      faces.length === 0
        ? "no face found"
        : faces.length === 1
          ? `one ${faces[0].expression} face`
          : `${faces.length} faces`;
    return `Meme with no caption: your photo, ${found}`;
  }

  // Edits send top and bottom; a new photo or a re-roll lets the server pick the caption.
  function showMeme(meme, { keepCaption, style, top, bottom }) {
    ui.placeholder.hidden = true;
    ui.memeWrap.hidden = false;
    ui.memeImage.src = meme.image_url;
    ui.memeImage.width = meme.width;
    ui.memeImage.height = meme.height;
    ui.memeImage.alt = memeAlt(meme);
    drawBoxes(meme, style);
    showFaces(meme.faces, meme.mood);

    ui.downloadPng.href = downloadUrl(meme.image_url, "png");
    ui.downloadJpeg.href = downloadUrl(meme.image_url, "jpg");
    // WebP keeps an animation, as GIF does; PNG and JPEG hold the first frame.
    ui.downloadWebp.href = downloadUrl(meme.image_url, "webp");
    ui.downloadGif.hidden = meme.frames <= 1;
    if (meme.frames > 1) ui.downloadGif.href = downloadUrl(meme.image_url, "gif");

    if (keepCaption) {
      // After an edit the fields already hold what was sent, and may hold newer typing.
      state.shown = { top, bottom, style };
    } else {
      ui.top.value = meme.caption.top;
      ui.bottom.value = meme.caption.bottom;
      remember(meme.caption);
      state.shown = { top: meme.caption.top, bottom: meme.caption.bottom, style };
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

  function redrawWithText(busyText) {
    generate({ top: ui.top.value, bottom: ui.bottom.value, fromEdit: true, busyText });
  }

  for (const field of [ui.top, ui.bottom]) {
    field.addEventListener("input", () => {
      // Typing wins over a caption the server is still picking (a re-roll): its answer
      // would overwrite the fields, so it is dropped, and the typed text is drawn instead.
      if (state.inFlight && !state.inFlight.fromEdit) cancelRequest();
      clearTimeout(state.editTimer);
      state.editTimer = setTimeout(() => redrawWithText(), EDIT_DELAY_MS);
      setDownloads(false);
    });
    field.addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      event.preventDefault(); // Enter redraws at once
      redrawWithText();
    });
  }
  // A new style keeps the caption on screen (edited or not) and redraws at once.
  for (const radio of ui.styles) {
    radio.addEventListener("change", () => redrawWithText());
  }
  ui.captionForm.addEventListener("submit", (event) => event.preventDefault());

  ui.reroll.addEventListener("click", () => {
    state.seed = randomSeed();
    generate({ busyText: "Finding another caption…", avoidRecent: true });
  });

  // The box toggle follows its checkbox, also when the browser restores the box's old
  // state on Back or reload (the style picker is read at each request, so it needs nothing).
  function showBoxesAsTicked() {
    ui.faceBoxes.hidden = !ui.showBoxes.checked;
  }
  ui.showBoxes.addEventListener("change", showBoxesAsTicked);
  window.addEventListener("pageshow", showBoxesAsTicked);
  showBoxesAsTicked();

  // ---- downloading ----------------------------------------------------------

  // The file is fetched first, so a refusal (the meme expired, too many conversions, a
  // busy server) shows the server's message here rather than saving it as a file.
  for (const link of DOWNLOAD_LINKS) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      if (link.getAttribute("aria-disabled") === "true" || link.hasAttribute("aria-busy")) return;
      download(link);
    });
  }

  async function download(link) {
    link.setAttribute("aria-busy", "true");
    announce("Preparing the download…");
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), DOWNLOAD_TIMEOUT_MS);
    try {
      const response = await fetch(link.href, { signal: controller.signal });
      if (!response.ok) {
        const payload = await response.json().catch(() => null);
        const error = (payload && payload.error) || {};
        const status = response.status;
        if (error.code === "meme_not_found") offerToRemake(link);
        else showError(error.message || `The server answered ${status}; please try again.`);
        showDownloadError();
        return;
      }
      const name = savedName(response.headers.get("Content-Disposition"), link.href);
      const url = URL.createObjectURL(await response.blob());
      const save = document.createElement("a");
      save.href = url;
      save.download = name;
      save.hidden = true;
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      // Only a download's own earlier error goes: one shown meanwhile (a refused
      // re-roll, say) is about something else.
      if (state.downloadError !== null && ui.error.textContent === state.downloadError) {
        clearError();
      }
      state.downloadError = null;
      announce(`Downloading ${name}.`);
    } catch (error) {
      showError(
        error.name === "AbortError"
          ? "The download took too long; please try again."
          : "Could not reach MemeGen. Check your connection and try again.",
      );
      showDownloadError();
    } finally {
      clearTimeout(timer);
      link.removeAttribute("aria-busy");
    }
  }

  // The message is at the top of the page, maybe far from the link (on a phone).
  function showDownloadError() {
    state.downloadError = ui.error.textContent;
    ui.error.scrollIntoView({ block: "nearest" });
  }

  // The name the server gives the file (Content-Disposition), else the address's last part.
  function savedName(disposition, href) {
    const header = disposition || "";
    const encoded = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(header);
    if (encoded) {
      try {
        return decodeURIComponent(encoded[1].trim());
      } catch {
        // a malformed encoded name: fall back to the plain one
      }
    }
    const plain = /filename\s*=\s*(?:"([^"]*)"|([^;\s]+))/i.exec(header);
    const name = plain && (plain[1] || plain[2]);
    return name || new URL(href, document.baseURI).pathname.split("/").pop();
  }

  // The server keeps a meme for a while only; the photo is still here to make it again.
  // The button goes with the message, so focus goes back to the download link.
  function offerToRemake(link) {
    showError(`This meme has expired: memes are kept for ${MEME_LIFETIME}.`);
    const again = document.createElement("button");
    again.type = "button";
    again.className = "button";
    again.dataset.testid = "remake-button";
    again.textContent = "Make it again";
    again.addEventListener("click", () => {
      link.focus();
      redrawWithText("Making it again…");
    });
    ui.error.append(" ", again);
  }
})();
