/* The shared widget runtime: trace loading, number formatting, smooth counters, the
 * player (play / pause / step / reset, speed, scrubber, keyboard), fullscreen,
 * open-in-new-tab, reduced motion and height reporting to an embedding page.
 * Widgets compute nothing here: every number arrives in the trace. */
(function () {
  "use strict";

  var motionQuery = window.matchMedia("(prefers-reduced-motion: reduce)");
  var embedded = window.self !== window.top;
  document.documentElement.classList.toggle("viz-embedded", embedded);

  function reducedMotion() { return motionQuery.matches; }

  function data() {
    return JSON.parse(document.getElementById("viz-trace").textContent);
  }

  // Non-finite floats travel as strings (JSON has no infinities).
  function num(x) {
    if (x === "-inf") return -Infinity;
    if (x === "inf") return Infinity;
    if (x === "nan") return NaN;
    return x;
  }

  function fmt(x, digits) {
    x = num(x);
    if (x === null || x === undefined) return "—";
    if (x === -Infinity) return "−∞";
    if (x === Infinity) return "∞";
    if (Number.isNaN(x)) return "NaN";
    var text = x.toFixed(digits === undefined ? 3 : digits);
    if (/^-0\.?0*$/.test(text)) text = text.slice(1);
    return text.replace("-", "−");
  }

  function easeOutExpo(t) { return t >= 1 ? 1 : 1 - Math.pow(2, -10 * t); }

  function durationMs() {
    return parseFloat(getComputedStyle(document.documentElement).getPropertyValue("--viz-duration-ms")) || 400;
  }

  // Animate the number shown in `el` to `value`; snap when motion is reduced or
  // either end is not finite.
  function tween(el, value, digits) {
    value = num(value);
    var from = el._vizValue;
    el._vizValue = value;
    cancelAnimationFrame(el._vizFrame);
    if (reducedMotion() || !isFinite(from) || !isFinite(value) || from === value) {
      el.textContent = fmt(value, digits);
      return;
    }
    var start = performance.now(), span = durationMs();
    function frame(now) {
      var t = easeOutExpo((now - start) / span);
      el.textContent = fmt(from + (value - from) * t, digits);
      if (t < 1) el._vizFrame = requestAnimationFrame(frame);
    }
    el._vizFrame = requestAnimationFrame(frame);
  }

  // The element a widget fills with a named value: <… data-field="name">.
  function field(name) { return document.querySelector('[data-field="' + name + '"]'); }

  function color(name) {
    return getComputedStyle(document.documentElement).getPropertyValue("--viz-" + name).trim();
  }

  // The player drives `render(index)` over `count` states.
  function player(options) {
    var root = document.querySelector(".viz-player");
    var count = options.count, render = options.render;
    var baseDelay = options.delayMs || 1500;
    var index = 0, timer = null;
    var q = function (sel) { return root.querySelector(sel); };
    var playButton = q('[data-act="play"]');
    var scrub = q(".viz-scrub"), pos = q(".viz-pos"), speed = q(".viz-speed");
    scrub.max = String(count - 1);

    function show(i) {
      index = Math.max(0, Math.min(count - 1, i));
      scrub.value = String(index);
      scrub.setAttribute("aria-valuetext", "step " + (index + 1) + " of " + count);
      pos.textContent = (index + 1) + " / " + count;
      q('[data-act="back"]').disabled = index === 0;
      q('[data-act="step"]').disabled = index === count - 1;
      render(index);
      if (index === count - 1) pause();
    }
    function setPlaying(on) {
      playButton.setAttribute("aria-pressed", on ? "true" : "false");
      playButton.querySelector(".viz-play-label").textContent = on ? "Pause" : "Play";
      playButton.querySelector(".viz-icon-play").style.display = on ? "none" : "";
      playButton.querySelector(".viz-icon-pause").style.display = on ? "" : "none";
    }
    function tick() {
      timer = setTimeout(function () {
        show(index + 1);
        if (timer !== null && index < count - 1) tick();
      }, baseDelay / parseFloat(speed.value));
    }
    function play() {
      if (index === count - 1) show(0);
      setPlaying(true);
      clearTimeout(timer);
      tick();
    }
    function pause() {
      clearTimeout(timer);
      timer = null;
      setPlaying(false);
    }
    function toggle() { timer === null ? play() : pause(); }

    var actions = {
      play: toggle,
      step: function () { pause(); show(index + 1); },
      back: function () { pause(); show(index - 1); },
      reset: function () { pause(); show(0); },
      more: function () { root.classList.toggle("viz-more"); },
    };
    root.addEventListener("click", function (event) {
      var button = event.target.closest("[data-act]");
      if (button && actions[button.dataset.act]) actions[button.dataset.act]();
    });
    scrub.addEventListener("input", function () { pause(); show(parseInt(scrub.value, 10)); });

    document.addEventListener("keydown", function (event) {
      if (event.altKey || event.ctrlKey || event.metaKey) return;
      var tag = event.target.tagName;
      if (tag === "SELECT" || (tag === "INPUT" && event.target !== scrub)) return;
      var key = event.key;
      if (key === " " || key === "k") actions.play();
      else if (key === "ArrowRight" || key === "l") actions.step();
      else if (key === "ArrowLeft" || key === "j") actions.back();
      else if (key === "Home" || key === "r") actions.reset();
      else if (key === "End") { pause(); show(count - 1); }
      else return;
      event.preventDefault();
    });

    // Reduced motion: snap to the end state; stepping still works, without tweening.
    show(reducedMotion() ? count - 1 : 0);
    // A new step list (a toggle switched the data): restart from its start (end if reduced motion).
    function restart(newCount) {
      pause();
      count = newCount;
      scrub.max = String(count - 1);
      show(reducedMotion() ? count - 1 : 0);
    }
    return { show: show, play: play, pause: pause, restart: restart, get index() { return index; } };
  }

  function wireChrome() {
    var full = document.querySelector('[data-act="fullscreen"]');
    if (full) {
      full.hidden = !document.fullscreenEnabled;
      full.addEventListener("click", function () {
        if (document.fullscreenElement) document.exitFullscreen();
        else document.documentElement.requestFullscreen();
      });
    }
    // Tell an embedding page how tall the content is, so phones never cut it off.
    if (embedded && window.ResizeObserver) {
      var shell = document.querySelector(".viz-shell");
      new ResizeObserver(function () {
        window.parent.postMessage({ type: "viz-height", height: Math.ceil(shell.scrollHeight) }, "*");
      }).observe(shell);
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wireChrome);
  else wireChrome();
  // Widget scripts run before `load`: from then on the figure is interactive.
  window.addEventListener("load", function () { document.documentElement.dataset.vizReady = "true"; });

  window.Viz = { data: data, num: num, fmt: fmt, tween: tween, color: color, field: field, player: player, reducedMotion: reducedMotion };
})();
