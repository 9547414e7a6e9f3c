/* Parley admin: keyboard annotation, the save rules' check, the transcript editor with
   its word diff, the players' keys. No inline scripts (the Content-Security-Policy). */
(function () {
  "use strict";

  // The turn list: tick every turn on the page.
  var checkAll = document.getElementById("check-all");
  if (checkAll) {
    checkAll.addEventListener("change", function () {
      document.querySelectorAll(".turn-check").forEach(function (box) { box.checked = checkAll.checked; });
    });
  }

  var form = document.querySelector("form.keyboard-form");
  if (!form) return;
  var fields = Array.prototype.slice.call(form.querySelectorAll("fieldset.question"));
  var active = 0;
  var lastAudio = document.getElementById("audio-input");
  var SPEEDS = [0.5, 0.75, 1, 1.25, 1.5, 2];

  // ------------------------------------------------------------------ questions
  function options(field) {
    return Array.prototype.slice.call(field.querySelectorAll("input")).filter(function (i) { return i.value !== "na"; });
  }
  function naInput(field) { return field.querySelector('input[value="na"]'); }
  function textBox(field) { return field.querySelector("textarea"); }
  function answered(field) {
    var box = textBox(field);
    return !!field.querySelector("input:checked") || !!(box && box.value.trim());
  }
  function changed(field) { field.dispatchEvent(new Event("change", { bubbles: true })); }
  function activate(index) {
    if (!fields.length) return;
    active = Math.max(0, Math.min(fields.length - 1, index));
    fields.forEach(function (f, i) { f.classList.toggle("active", i === active); });
    fields[active].scrollIntoView({ block: "nearest" });
  }
  function next() { if (active < fields.length - 1) activate(active + 1); }
  function choose(field, input) {
    if (!input) return false;
    var multiple = field.dataset.multiple && input.value !== "na";
    if (multiple) {
      input.checked = !input.checked;
      var na = naInput(field);
      if (na) na.checked = false;
    } else {
      if (input.value === "na") options(field).forEach(function (i) { i.checked = false; });
      input.checked = true;
      var box = textBox(field);
      if (box && input.value === "na") box.value = "";
    }
    field.classList.remove("missing");
    changed(field);
    if (!multiple) next();
    return true;
  }
  function clear(field) {
    field.querySelectorAll("input").forEach(function (i) { i.checked = false; });
    var box = textBox(field);
    if (box) box.value = "";
    changed(field);
  }
  function byValue(field, value) {
    return options(field).filter(function (i) { return i.value === value; })[0];
  }
  function answerKey(field, key) {
    var kind = field.dataset.kind;
    if (key === "n") return choose(field, naInput(field));
    if (key === "x" || key === "Backspace") { clear(field); return true; }
    if (kind === "ordinal" && /^[0-9]$/.test(key)) return choose(field, byValue(field, key)) || true;
    if (kind === "boolean") {
      if (key === "1" || key === "y") return choose(field, byValue(field, "yes"));
      if (key === "0") return choose(field, byValue(field, "no"));
    }
    if (kind === "categorical") {
      if (/^[1-9]$/.test(key)) return choose(field, options(field)[Number(key) - 1]) || true;
      if (key === "y" && field.dataset.stored) return choose(field, byValue(field, field.dataset.stored));
    }
    if (kind === "text" && key === "f") {
      var box = textBox(field);
      if (box) { box.focus(); return true; }
    }
    return false;
  }
  function describe(field) {  // the chosen value's rubric, and whether a stored value was right
    var chosen = field.querySelector("input:checked");
    field.querySelectorAll("[data-rubric] span").forEach(function (span) {
      span.classList.toggle("chosen", !!chosen && span.dataset.value === chosen.value);
    });
    var verdict = field.querySelector("[data-verdict]");
    if (verdict) {
      var stored = field.dataset.stored;
      verdict.textContent = !chosen ? "" : chosen.value === "na" ? "n/a" :
        chosen.value === stored ? "✓ right" : "✗ wrong (" + chosen.value + ")";
      verdict.className = "verdict " + (!chosen || chosen.value === "na" ? "" : chosen.value === stored ? "text-success" : "text-danger");
    }
  }
  fields.forEach(function (f, i) {
    f.addEventListener("click", function () { activate(i); });
    f.addEventListener("change", function () { describe(f); if (answered(f)) f.classList.remove("missing"); });
    var box = textBox(f);
    if (box) box.addEventListener("input", function () {
      var na = naInput(f);
      if (na && box.value.trim()) na.checked = false;
    });
    describe(f);
  });
  activate(0);

  // The save rules: every required question answered or n/a (the server checks too).
  var missingBox = document.getElementById("form-missing");
  form.addEventListener("submit", function (event) {
    var missing = fields.filter(function (f) { return f.dataset.required && !answered(f); });
    fields.forEach(function (f) { f.classList.toggle("missing", missing.indexOf(f) >= 0); });
    if (!missing.length) return;
    event.preventDefault();
    if (missingBox) {
      missingBox.textContent = "Not saved: answer or mark n/a (n): " + missing.map(function (f) {
        return f.querySelector("legend").firstChild.textContent.trim();
      }).join(", ") + ".";
      missingBox.classList.remove("d-none");
    }
    activate(fields.indexOf(missing[0]));
  });

  // ------------------------------------------------------------------ transcript
  var transcript = document.getElementById("corrected_transcript");
  var diffBox = document.getElementById("transcript-diff");
  function normalise(text) {
    return text.toLowerCase().replace(/[\p{P}\p{S}]/gu, "").replace(/\s+/g, " ").trim();
  }
  function state(value) {
    var input = form.querySelector('input[name="transcript_state"][value="' + value + '"]');
    if (input) input.checked = true;
  }
  function currentState() {
    var input = form.querySelector('input[name="transcript_state"]:checked');
    return input ? input.value : "left";
  }
  function renderDiff() {
    if (!diffBox || !transcript) return;
    diffBox.textContent = "";
    var heard = transcript.dataset.heard || "";
    if (normalise(transcript.value) === normalise(heard) || !window.Diff) return;
    window.Diff.diffWords(heard, transcript.value, { ignoreCase: true }).forEach(function (part) {
      var span = document.createElement(part.added ? "ins" : part.removed ? "del" : "span");
      span.textContent = part.value;
      diffBox.appendChild(span);
    });
  }
  if (transcript) {
    transcript.addEventListener("input", function () {
      var edited = normalise(transcript.value) !== normalise(transcript.dataset.heard || "") && !!normalise(transcript.value);
      if (edited) state("edited");
      else if (currentState() === "edited") state("left");
      renderDiff();
    });
    form.querySelectorAll('input[name="transcript_state"]').forEach(function (input) {
      input.addEventListener("change", function () {
        if (input.value === "confirmed" || input.value === "left") transcript.value = transcript.dataset.heard || "";
        if (input.value === "edited") { transcript.focus(); }
        renderDiff();
      });
    });
    renderDiff();
  }

  // ------------------------------------------------------------------ players
  function toggle(audio) {
    if (!audio) return;
    lastAudio = audio;
    document.querySelectorAll("audio").forEach(function (other) { if (other !== audio) other.pause(); });
    if (audio.paused) { audio.play(); } else { audio.pause(); }
  }
  function speechStart() {
    var wave = document.getElementById("waveform");
    return wave && wave.dataset.speechStart ? Number(wave.dataset.speechStart) : 0;
  }
  function replay() {
    var audio = document.getElementById("audio-input");
    if (!audio) return;
    lastAudio = audio;
    audio.currentTime = speechStart();
    audio.play();
  }
  function seek(seconds) {
    if (!lastAudio) return;
    lastAudio.currentTime = Math.max(0, Math.min((lastAudio.duration || 0), lastAudio.currentTime + seconds));
  }
  function speed(step) {
    var audio = lastAudio || document.getElementById("audio-input");
    if (!audio) return;
    var at = SPEEDS.indexOf(audio.playbackRate);
    var rate = SPEEDS[Math.max(0, Math.min(SPEEDS.length - 1, (at < 0 ? 2 : at) + step))];
    document.querySelectorAll("audio").forEach(function (a) { a.playbackRate = rate; });
    var badge = document.getElementById("speed");
    if (badge) badge.textContent = rate + "×";
  }
  function typing(target) {
    return target && (target.tagName === "TEXTAREA" || target.tagName === "SELECT" ||
      (target.tagName === "INPUT" && !/^(radio|checkbox|submit|button)$/.test(target.type)));
  }
  function focusText(id) {
    var el = document.getElementById(id);
    if (el) { el.focus(); el.setSelectionRange(el.value.length, el.value.length); }
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.altKey) return;
    var key = event.key;
    if ((event.ctrlKey || event.metaKey) && key === "Enter") {
      event.preventDefault(); form.requestSubmit(); return;
    }
    if (typing(event.target)) {
      if (key === "Escape") event.target.blur();
      return;
    }
    if (event.ctrlKey || event.metaKey) return;
    var skip = document.getElementById("skip");
    var field = fields[active];
    var handled = true;
    if (key === " " || key === "q") toggle(key === "q" ? document.getElementById("audio-input") : lastAudio);
    else if (key === "a") toggle(document.getElementById("audio-output"));
    else if (key === "b") replay();
    else if (key === "ArrowLeft") seek(-2);
    else if (key === "ArrowRight") seek(2);
    else if (key === "[") speed(-1);
    else if (key === "]") speed(1);
    else if (key === "ArrowDown" || key === "j") activate(active + 1);
    else if (key === "ArrowUp" || key === "k") activate(active - 1);
    else if (key === "Enter") form.requestSubmit();
    else if (key === "t" && transcript) { state("confirmed"); transcript.value = transcript.dataset.heard || ""; renderDiff(); }
    else if (key === "e") focusText("corrected_transcript");
    else if (key === "r") focusText("better_response");
    else if (key === "c") focusText("comment");
    else if (key === "s" && skip) window.location.href = skip.href;
    else if (!(field && answerKey(field, key))) handled = false;
    if (handled) event.preventDefault();
  });
})();
