// When a preview or another in-page request fails, say so on the page instead of leaving it
// unchanged: htmx does not swap error answers. The text is the clinic's, not the server's.
(function () {
  "use strict";
  var SAID = {
    400: "The server could not read that request. Reload the page and try again.",
    403: "That was refused: your sign-in may have ended or the page was open too long. " +
         "Reload the page (your sign-in is asked for again if needed) and try again.",
    404: "Not found: it may have been removed, or it belongs to a site you do not work at. " +
         "Reload the page to see what is there now.",
    429: "Too many requests in a short time. Wait a minute and try again.",
  };
  var SERVER = "Something went wrong on the server and nothing was changed. Try again; " +
               "if it happens again, tell your site's administrator what you were doing.";
  var OFFLINE = "The server could not be reached and nothing was changed. Check the " +
                "connection and try again.";

  function say(text) {
    var region = document.getElementById("request-problem");
    if (!region) { return; }
    region.textContent = text;
    region.hidden = false;
  }
  document.addEventListener("htmx:beforeRequest", function () {
    var region = document.getElementById("request-problem");
    if (region) { region.hidden = true; region.textContent = ""; }
  });
  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    say(SAID[status] || (status >= 500 ? SERVER : SAID[400]));
  });
  document.addEventListener("htmx:sendError", function () { say(OFFLINE); });
}());
