/* Embedded widgets on a post: frames that load late, fullscreen from the toolbar, and
 * a frame that grows to the height its widget reports, so nothing is ever cut off. The
 * 16:9 box (or the phone aspect) reserved by CSS stays the minimum, so the page does
 * not jump; widget content never depends on the frame's height, so growing cannot
 * feed back. */
(function () {
  "use strict";

  // A frame loads only after the post itself has loaded, and only as it nears the
  // viewport: a widget never competes with the post's first load (a browser's own
  // loading="lazy" starts frames thousands of pixels early). Without JavaScript the
  // <noscript> fallback shows the trace instead.
  var NEAR = "400px 0px";
  function load(frame) {
    frame.src = frame.getAttribute("data-src");
    frame.removeAttribute("data-src");
  }
  function start() {
    var frames = document.querySelectorAll(".viz-embed iframe[data-src]");
    if (!("IntersectionObserver" in window)) return frames.forEach(load);
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (!entry.isIntersecting) return;
        observer.unobserve(entry.target);
        load(entry.target);
      });
    }, { rootMargin: NEAR });
    frames.forEach(function (frame) { observer.observe(frame); });
  }
  if (document.readyState === "complete") start();
  else window.addEventListener("load", start);
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-viz-fullscreen]");
    if (!button) return;
    var frame = button.closest(".viz-embed").querySelector("iframe");
    if (frame.requestFullscreen) frame.requestFullscreen();
  });

  window.addEventListener("message", function (event) {
    if (!event.data || event.data.type !== "viz-height") return;
    document.querySelectorAll(".viz-embed iframe").forEach(function (frame) {
      if (frame.contentWindow !== event.source) return;
      var height = Math.max(0, Math.min(4000, Number(event.data.height) || 0));
      var box = frame.parentElement;
      // A frame not laid out yet (lazy, or mid-resize) is narrow and reports a tall,
      // stacked layout: ignore it rather than keep a giant frame.
      if (frame.clientWidth < 200) return;
      box.style.height = "";  // back to the reserved 16:9 (or phone) box, then grow if needed
      if (height > box.clientHeight + 1) box.style.height = height + "px";
    });
  });
})();
