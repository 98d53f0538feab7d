// "Copy" buttons: <button data-copy="input-id"> copies that input's value (a calendar feed's
// address, shown once). The clipboard API where the browser allows it, else the selection.
(function () {
  "use strict";
  function copied(id) {
    var note = document.getElementById(id + "-copied");
    if (note) { note.hidden = false; }
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) { return; }
    var input = document.getElementById(button.getAttribute("data-copy"));
    if (!input) { return; }
    input.focus();
    input.select();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(
        function () { copied(input.id); },
        function () { if (document.execCommand("copy")) { copied(input.id); } }
      );
    } else if (document.execCommand("copy")) {
      copied(input.id);
    }
  });
})();
