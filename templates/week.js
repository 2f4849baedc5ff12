/* Week view: move a booking by dragging it onto free time (progressive enhancement).
   Without JavaScript the booking's page has the reschedule form. No dependencies. */
(function () {
  "use strict";
  var week = document.querySelector(".week[data-csrf]");
  if (!week || !window.fetch || !("draggable" in document.createElement("li"))) {
    return;
  }
  var csrf = week.getAttribute("data-csrf");
  // The page's language: the words come from the page (data-ask-overlap, data-move-failed).
  var askOverlap = week.getAttribute("data-ask-overlap") ||
    "The station is already booked for part of that time. Move the booking anyway?";
  var moveFailed = week.getAttribute("data-move-failed") || "The booking could not be moved";
  var dragged = null;

  function move(id, start, allow) {
    var body = { scheduled_start: start };
    if (allow) {
      body.allow_overlap = true;
    }
    fetch("/api/procedures/" + encodeURIComponent(id), {
      method: "PATCH",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify(body)
    }).then(function (answer) {
      if (answer.status === 409) {
        return answer.json().then(function (problem) {
          if (problem.overlaps && window.confirm(askOverlap)) {
            move(id, start, true);
          }
        });
      }
      if (!answer.ok) {
        window.alert(moveFailed + " (" + answer.status + ").");
        return null;
      }
      window.location.reload();
      return null;
    });
  }

  Array.prototype.forEach.call(week.querySelectorAll("li.booking[data-movable]"), function (li) {
    li.setAttribute("draggable", "true");
    li.addEventListener("dragstart", function (event) {
      dragged = li.getAttribute("data-booking");
      event.dataTransfer.setData("text/plain", dragged);
      event.dataTransfer.effectAllowed = "move";
    });
    li.addEventListener("dragend", function () {
      dragged = null;
    });
  });
  Array.prototype.forEach.call(week.querySelectorAll("li.free[data-start]"), function (li) {
    li.addEventListener("dragover", function (event) {
      if (dragged) {
        event.preventDefault();
        li.classList.add("drop");
      }
    });
    li.addEventListener("dragleave", function () {
      li.classList.remove("drop");
    });
    li.addEventListener("drop", function (event) {
      event.preventDefault();
      li.classList.remove("drop");
      if (dragged) {
        move(dragged, li.getAttribute("data-start"), false);
      }
      dragged = null;
    });
  });
}());
