/* Parley admin: keyboard annotation and confirmations. No inline scripts (CSP). */
(function () {
  "use strict";

  // Forms that ask first (delete buttons).
  document.querySelectorAll("form.confirm").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm || "Are you sure?")) event.preventDefault();
    });
  });

  var form = document.querySelector("form.keyboard-form");
  if (!form) return;
  var fields = Array.prototype.slice.call(form.querySelectorAll("fieldset.score"));
  var active = 0;
  var lastAudio = document.getElementById("audio-input");

  function activate(index) {
    if (!fields.length) return;
    active = Math.max(0, Math.min(fields.length - 1, index));
    fields.forEach(function (f, i) { f.classList.toggle("active", i === active); });
  }
  function score(value) {
    var input = fields[active].querySelector('input[value="' + value + '"]');
    if (input) { input.checked = true; input.dispatchEvent(new Event("change", { bubbles: true })); }
    if (value !== "" && active < fields.length - 1) activate(active + 1);
  }
  function toggle(audio) {
    if (!audio) return;
    lastAudio = audio;
    document.querySelectorAll("audio").forEach(function (other) { if (other !== audio) other.pause(); });
    if (audio.paused) { audio.play(); } else { audio.pause(); }
  }
  function typing(target) {
    return target && (target.tagName === "TEXTAREA" || target.tagName === "SELECT" ||
      (target.tagName === "INPUT" && !/^(radio|checkbox|submit|button)$/.test(target.type)));
  }
  function focusText(id) {
    var el = document.getElementById(id);
    if (el) { el.focus(); el.setSelectionRange(el.value.length, el.value.length); }
  }

  fields.forEach(function (f, i) {
    f.addEventListener("click", function () { activate(i); });
  });
  activate(0);

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
    var handled = true;
    if (key === " " || key === "q") toggle(key === "q" ? document.getElementById("audio-input") : lastAudio);
    else if (key === "a") toggle(document.getElementById("audio-output"));
    else if (/^[0-5]$/.test(key)) score(key);
    else if (key === "x" || key === "Backspace") score("");
    else if (key === "ArrowDown" || key === "j") activate(active + 1);
    else if (key === "ArrowUp" || key === "k") activate(active - 1);
    else if (key === "Enter") form.requestSubmit();
    else if (key === "e") focusText("corrected_transcript");
    else if (key === "r") focusText("better_response");
    else if (key === "c") focusText("comment");
    else if (key === "s" && skip) window.location.href = skip.href;
    else handled = false;
    if (handled) event.preventDefault();
  });
})();
