/* Embedded widgets on a post: fullscreen from the toolbar, and a frame that grows to
 * the height its widget reports, so nothing is ever cut off. The 16:9 box (or the
 * phone aspect) reserved by CSS stays the minimum, so the page does not jump; widget
 * content never depends on the frame's height, so growing cannot feed back. */
(function () {
  "use strict";
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
