// The listening page's player: buttons for play/pause and 10-second steps, the position on the level
// bar, and a clear sentence when the server stops answering (link expired or staff session ended).
(function () {
  "use strict";
  var audio = document.getElementById("player");
  if (!audio) { return; }
  var figure = audio.closest("figure");
  var status = document.getElementById("status");
  var toggle = document.getElementById("toggle");
  var position = document.getElementById("position");
  var levels = document.getElementById("levels");
  var width = levels ? levels.viewBox.baseVal.width : 0;

  audio.addEventListener("contextmenu", function (event) { event.preventDefault(); });
  toggle.addEventListener("click", function () {
    if (audio.paused) { audio.play().catch(function () {}); } else { audio.pause(); }
  });
  document.getElementById("back").addEventListener("click", function () {
    audio.currentTime = Math.max(0, audio.currentTime - 10);
  });
  document.getElementById("fwd").addEventListener("click", function () {
    if (isFinite(audio.duration)) { audio.currentTime = Math.min(audio.duration, audio.currentTime + 10); }
  });
  function label() { toggle.textContent = audio.paused ? figure.dataset.play : figure.dataset.pause; }
  audio.addEventListener("play", label);
  audio.addEventListener("pause", label);
  audio.addEventListener("ended", label);
  audio.addEventListener("timeupdate", function () {
    if (position && isFinite(audio.duration) && audio.duration > 0) {
      position.setAttribute("x", String(width * audio.currentTime / audio.duration));
    }
  });
  audio.addEventListener("error", function () {
    status.textContent = figure.dataset.stopped;
    label();
  });
})();
