/* The turn page's waveform: wavesurfer.js (vendored, admin/static/vendor) drawn over the
   page's own <audio id="audio-input">, so the keyboard (parley.js) and the player stay
   one. The VAD's speech start and end are a shaded region; a click seeks. */
(function () {
  "use strict";
  var container = document.getElementById("waveform");
  var audio = document.getElementById("audio-input");
  if (!container || !audio || !window.WaveSurfer || !window.WaveSurfer.Regions) return;
  var regions = window.WaveSurfer.Regions.create();
  var wave = window.WaveSurfer.create({
    container: container,
    media: audio,
    height: 80,
    waveColor: "#9bb7d4",
    progressColor: "#1f5f99",
    cursorColor: "#d62728",
    normalize: true,
    dragToSeek: true,
    plugins: [regions],
  });
  wave.on("decode", function () {
    var start = parseFloat(container.dataset.speechStart);
    var end = parseFloat(container.dataset.speechEnd);
    if (!isNaN(start) && !isNaN(end)) {
      regions.addRegion({ start: start, end: end, color: "rgba(44, 160, 44, 0.18)", drag: false, resize: false, content: "speech", id: "speech" });
      regions.addRegion({ start: start, color: "rgba(44, 160, 44, 0.9)", drag: false, content: "start", id: "speech-start" });
      regions.addRegion({ start: end, color: "rgba(214, 39, 40, 0.9)", drag: false, content: "end", id: "speech-end" });
    }
    container.dataset.ready = "1";
  });
  wave.on("error", function (error) { container.dataset.error = String(error); });
  audio.classList.add("with-waveform");
  window.parleyWaveform = wave;
})();
