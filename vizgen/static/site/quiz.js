/* Instant feedback for the self-check (vizgen/quiz.py renders the markup). */
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches(".quiz-option input")) return;
    var question = input.closest(".quiz-question");
    var right = input.dataset.correct === "true";
    question.querySelectorAll(".quiz-option").forEach(function (label) {
      label.classList.remove("quiz-right", "quiz-wrong");
    });
    input.closest(".quiz-option").classList.add(right ? "quiz-right" : "quiz-wrong");
    var feedback = question.querySelector(".quiz-feedback");
    feedback.innerHTML = (right ? "<strong>Right.</strong> " : "<strong>Not quite.</strong> ") + input.dataset.why;
    feedback.classList.toggle("quiz-feedback-right", right);  // its math was typeset at build time
  });
})();
