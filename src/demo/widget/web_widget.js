/* mock Zendesk web_widget.js: runs in the loader's src-less iframe */
(function () {
  var P = window.parent, pd = P.document, compose = P.zEmbedCompose;
  function xhr(method, url, body, cb) {
    var x = new XMLHttpRequest();
    x.open(method, url);
    if (body) x.setRequestHeader("content-type", "application/json");
    x.onload = function () { cb(x.status, x.responseText ? JSON.parse(x.responseText) : null); };
    x.onerror = function () { pd.documentElement.dataset.widgetError = "xhr " + url; };
    x.send(body);
  }
  xhr("GET", "https://" + compose.id + "/embeddable/config", null, function (status, config) {
    // Telemetry with what the page is about: answered locally, never forwarded.
    var blip = btoa(unescape(encodeURIComponent(JSON.stringify({ url: P.location.href, title: pd.title, referrer: pd.referrer }))));
    new Image().src = "https://" + compose.id + "/embeddable_blip?type=pageView&data=" + encodeURIComponent(blip);
    // A chunk from the hard-coded webpack base, and the stylesheet with its font.
    var chunk = document.createElement("script");
    chunk.src = "https://static.zdassets.com/web_widget/latest/chunk-chat.js";
    document.head.appendChild(chunk);
    var css = document.createElement("link");
    css.rel = "stylesheet"; css.href = compose.baseUrl + "widget.css";
    document.head.appendChild(css);
    // The launcher and the widget: more src-less frames, in the page.
    var launcher = pd.createElement("iframe");
    launcher.id = "launcher"; launcher.title = "Button to launch messaging window";
    pd.body.appendChild(launcher);
    var ld = launcher.contentDocument;
    ld.body.innerHTML = '<button id="open" style="font-family:zd-font">Help</button><div id="log"></div>';
    // A ticket, with the page it was filed from.
    xhr("POST", "https://" + compose.id + "/api/v2/requests.json",
      JSON.stringify({ request: { subject: "Appointment", comment: { body: "I need to reschedule" }, via: { page: P.location.href } } }),
      function (status, r) { pd.documentElement.dataset.ticket = status + ":" + (r && r.request && r.request.id); });
    // Chat over the WebSocket whose host comes from config; the agent's avatar URL arrives in a message.
    var ws = new WebSocket("wss://" + config.chatHost + "/ws?channel=chat");
    ws.onopen = function () { ws.send(JSON.stringify({ type: "chat.msg", text: "hello from the patient" })); };
    ws.onmessage = function (e) {
      var m = JSON.parse(e.data);
      pd.documentElement.dataset.chat = m.text;
      var img = ld.createElement("img");
      img.onload = function () { pd.documentElement.dataset.widget = "ready"; };
      img.onerror = function () { pd.documentElement.dataset.widget = "avatar failed"; };
      img.src = m.avatar;
      ld.getElementById("log").appendChild(img);
    };
    ws.onerror = function () { pd.documentElement.dataset.widgetError = "websocket"; };
  });
})();
