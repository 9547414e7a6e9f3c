/* The blind A/B page (admin/templates/parley/pairwise.html): keys to play the request
   and both answers, to choose A, B or a tie, and to save. No inline scripts (CSP). */
(function () {
  "use strict";
  var form = document.getElementById("preference-form");
  if (!form) return;
  var last = null;
  var missing = document.getElementById("form-missing");

  function play(audio) {
    if (!audio) return;
    document.querySelectorAll("audio").forEach(function (other) { if (other !== audio) other.pause(); });
    last = audio;
    if (audio.paused) { audio.play(); } else { audio.pause(); }
  }
  function choose(value) {
    var input = form.querySelector('input[name="choice"][value="' + value + '"]');
    if (!input) return;
    input.checked = true;
    document.getElementById("pair-choice").classList.remove("missing");
    if (missing) missing.classList.add("d-none");
    document.querySelectorAll(".answer-card").forEach(function (card) {
      card.classList.toggle("chosen", card.dataset.side === value);
    });
  }
  form.querySelectorAll('input[name="choice"]').forEach(function (input) {
    input.addEventListener("change", function () { choose(input.value); });
    if (input.checked) choose(input.value);
  });
  form.addEventListener("submit", function (event) {
    if (form.querySelector('input[name="choice"]:checked')) return;
    event.preventDefault();
    document.getElementById("pair-choice").classList.add("missing");
    if (missing) missing.classList.remove("d-none");
  });
  function typing(target) {
    return target && (target.tagName === "TEXTAREA" || target.tagName === "SELECT" ||
      (target.tagName === "INPUT" && !/^(radio|checkbox|submit|button)$/.test(target.type)));
  }
  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.altKey) return;
    var key = event.key;
    if ((event.ctrlKey || event.metaKey) && key === "Enter") { event.preventDefault(); form.requestSubmit(); return; }
    if (typing(event.target)) {
      if (key === "Escape") event.target.blur();
      return;
    }
    if (event.ctrlKey || event.metaKey) return;
    var skip = document.getElementById("skip");
    var handled = true;
    if (key === "q") play(document.getElementById("audio-request"));
    else if (key === "1") play(document.getElementById("audio-A"));
    else if (key === "2") play(document.getElementById("audio-B"));
    else if (key === " ") play(last || document.getElementById("audio-request") || document.getElementById("audio-A"));
    else if (key === "a" || key === "A") choose("A");
    else if (key === "b" || key === "B") choose("B");
    else if (key === "t" || key === "=") choose("tie");
    else if (key === "c") document.getElementById("comment").focus();
    else if (key === "Enter") form.requestSubmit();
    else if (key === "s" && skip) window.location.href = skip.href;
    else handled = false;
    if (handled) event.preventDefault();
  });
})();
