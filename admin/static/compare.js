/* The Compare page: each transcript as a word diff against the item's reference
   transcript (jsdiff, vendored), both normalised as the WER is (lower case, no
   punctuation, single spaces), so what is marked is what the WER counts; one answer
   plays at a time. No inline scripts (the Content-Security-Policy). */
(function () {
  "use strict";
  function normalise(text) {
    return text.toLowerCase().replace(/[\p{P}\p{S}]/gu, "").replace(/\s+/g, " ").trim();
  }
  if (window.Diff) {
    document.querySelectorAll(".compare-items .heard[data-reference]").forEach(function (box) {
      var reference = normalise(box.dataset.reference || "");
      var heard = normalise(box.dataset.heard || "");
      if (!reference || !heard) return;
      box.textContent = "";
      window.Diff.diffWords(reference, heard).forEach(function (part) {
        var span = document.createElement(part.added ? "ins" : part.removed ? "del" : "span");
        span.textContent = part.value;
        box.appendChild(span);
      });
      box.dataset.diffed = "1";
    });
  }
  document.querySelectorAll(".compare-items audio").forEach(function (audio) {
    audio.addEventListener("play", function () {
      document.querySelectorAll(".compare-items audio").forEach(function (other) {
        if (other !== audio) other.pause();
      });
    });
  });
})();
