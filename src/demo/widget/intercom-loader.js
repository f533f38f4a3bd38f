/* mock Intercom widget loader (widget.intercom.io/widget/<app_id>) */
(function () {
  var s = document.createElement("script");
  s.src = "https://js.intercomcdn.com/frame-modern.js";
  document.head.appendChild(s);
})();
