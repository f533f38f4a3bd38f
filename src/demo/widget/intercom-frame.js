/* mock Intercom frame-modern.js: the Messenger in a src-less iframe */
(function () {
  var settings = window.intercomSettings || {};
  var f = document.createElement("iframe");
  f.id = "intercom-frame"; f.title = "Intercom";
  document.body.appendChild(f);
  var d = f.contentDocument, w = f.contentWindow;
  d.body.innerHTML = '<div id="intercom-container"></div>';
  var root = document.documentElement;
  // The ping carries the page (referer) in a form body, as Intercom's does.
  var form = "app_id=" + encodeURIComponent(settings.app_id) + "&referer=" + encodeURIComponent(location.href) +
    "&anonymous_session=" + encodeURIComponent("session-from-cookie");
  w.fetch("https://api-iam.intercom.io/messenger/web/ping", {
    method: "POST", body: form, headers: { "content-type": "application/x-www-form-urlencoded" }
  }).then(function (r) { return r.json(); }).then(function (ping) {
    var ws = new w.WebSocket(ping.realtime.endpoints[0]);
    ws.onopen = function () { ws.send(JSON.stringify({ eventType: "hello", text: "hello from the patient" })); };
    ws.onmessage = function (e) {
      var m = JSON.parse(e.data);
      root.dataset.intercom = m.text;
    };
    ws.onerror = function () { root.dataset.intercomError = "websocket"; };
  }, function (e) { root.dataset.intercomError = "ping " + e; });
})();
