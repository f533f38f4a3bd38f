//! Pages whose kept first-party scripts open connections that no CSP directive
//! governs — resource hints and WebRTC ICE servers — by every path a script
//! has. tagwarden's run-time shim (first in `<head>`) must neutralize and
//! report each; hints to the site itself and to an allowed vendor must keep
//! working. Every refused target has a host of its own, so the expected reports
//! are exact.

/// `/runtime/hints`.
pub const HINTS_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Runtime resource hints</title>
</head>
<body>
<h1>Runtime resource hints</h1>
<span id="placeholder"></span>
<div id="box"></div>
<iframe id="static-frame"></iframe>
<script src="/static/hints.js"></script>
</body>
</html>
"#;

/// Hosts `/static/hints.js` hints at, one per insertion path (all refused).
pub const HINT_HOSTS: &[&str] = &[
    "preconnect.tracker.example",
    "dns-prefetch.tracker.example",
    "prefetch.tracker.example",
    "prerender.tracker.example",
    "preload.tracker.example",
    "modulepreload.tracker.example",
    "insertbefore.tracker.example",
    "append.tracker.example",
    "prepend.tracker.example",
    "replacechildren.tracker.example",
    "replacewith.tracker.example",
    "before.tracker.example",
    "after.tracker.example",
    "insertadjacentelement.tracker.example",
    "setter-rel.tracker.example",
    "setter-href.tracker.example",
    "setattribute.tracker.example",
    "rellist.tracker.example",
    "innerhtml.tracker.example",
    "outerhtml.tracker.example",
    "insertadjacenthtml.tracker.example",
    "docwrite.tracker.example",
    "domparser.tracker.example",
    "range.tracker.example",
    "frame-append.tracker.example",
    "frame-write.tracker.example",
    "frame-innerhtml.tracker.example",
    "static-frame-write.tracker.example",
];

/// `/static/hints.js`: a first-party script (kept, nonced) adding resource hints
/// to tracker hosts by every insertion path, in the document and in src-less
/// frames; then a first-party and an allowed-vendor hint that must keep working.
pub const HINTS_JS: &str = r#"// First-party script (allowed): resource hints at run time, every way there is.
(function () {
  var T = function (name) { return "https://" + name + ".tracker.example/"; };
  function link(rel, href, doc) {
    var l = (doc || document).createElement("link");
    l.rel = rel;
    l.href = href;
    return l;
  }
  var head = document.head, box = document.getElementById("box");
  head.appendChild(link("preconnect", T("preconnect")));
  head.appendChild(link("dns-prefetch", T("dns-prefetch")));
  head.appendChild(link("prefetch", T("prefetch") + "next.html"));
  head.appendChild(link("prerender", T("prerender") + "next.html"));
  var pl = link("preload", T("preload") + "x.js"); pl.setAttribute("as", "script"); head.appendChild(pl);
  head.appendChild(link("modulepreload", T("modulepreload") + "m.js"));
  head.insertBefore(link("preconnect", T("insertbefore")), head.firstChild);
  head.append(link("preconnect", T("append")));
  head.prepend(link("preconnect", T("prepend")));
  var holder = document.createElement("div"); box.appendChild(holder);
  holder.replaceChildren(link("preconnect", T("replacechildren")));
  document.getElementById("placeholder").replaceWith(link("preconnect", T("replacewith")));
  box.before(link("preconnect", T("before")));
  box.after(link("preconnect", T("after")));
  box.insertAdjacentElement("beforeend", link("preconnect", T("insertadjacentelement")));
  // Attributes of links already in the document.
  var inert = link("", T("setter-rel")); head.appendChild(inert); inert.rel = "preconnect";
  var own = link("preconnect", "/"); head.appendChild(own); own.href = T("setter-href");
  var own2 = link("preconnect", "/"); head.appendChild(own2); own2.setAttribute("href", T("setattribute"));
  var rl = link("", T("rellist")); head.appendChild(rl); rl.relList.add("preconnect");
  // Markup.
  var d1 = document.createElement("div"); box.appendChild(d1);
  d1.innerHTML = '<link rel="preconnect" href="' + T("innerhtml") + '">';
  var d2 = document.createElement("div"); box.appendChild(d2);
  d2.outerHTML = '<div><link rel=preconnect href=' + T("outerhtml") + '></div>';
  box.insertAdjacentHTML("beforeend", "<LINK rel='preconnect' href='" + T("insertadjacenthtml") + "'>");
  document.write('<link rel="preconnect" href="' + T("docwrite") + '">');
  var parsed = new DOMParser().parseFromString('<link rel="preconnect" href="' + T("domparser") + '">', "text/html");
  head.appendChild(parsed.querySelector("link"));
  var range = document.createRange(); range.selectNodeContents(box);
  box.appendChild(range.createContextualFragment('<link rel="preconnect" href="' + T("range") + '">'));
  // Src-less frames: one the script creates, one the parser created.
  var f = document.createElement("iframe"); document.body.appendChild(f);
  var fd = f.contentDocument;
  fd.head.appendChild(link("preconnect", T("frame-append"), fd));
  var fdiv = fd.createElement("div"); fd.body.appendChild(fdiv);
  fdiv.innerHTML = '<link rel="preconnect" href="' + T("frame-innerhtml") + '">';
  fd.write('<link rel="preconnect" href="' + T("frame-write") + '">');
  fd.close();
  var sd = window.frames[0].document;
  sd.write('<link rel="preconnect" href="' + T("static-frame-write") + '">');
  sd.close();
  // What must keep working: the site itself, and an allowed vendor (first-party path).
  var site = link("preconnect", "/"); site.id = "hint-own"; head.appendChild(site);
  var vendor = link("prefetch", "https://static.zdassets.com/ekr/snippet.js"); vendor.id = "hint-vendor"; head.appendChild(vendor);
  document.documentElement.dataset.hints = JSON.stringify({ own: site.href, vendor: vendor.href });
})();
"#;

/// `/runtime/webrtc`: peer connections with third-party STUN and TURN servers
/// (UDP and TCP), from the document and from a src-less frame, on a route
/// where WebRTC is blocked (the shipped default).
pub const WEBRTC_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>WebRTC</title></head>
<body>
<h1>WebRTC</h1>
<script src="/static/webrtc.js"></script>
</body>
</html>
"#;

/// Hosts `/static/webrtc.js` names as ICE servers (all refused and reported).
pub const WEBRTC_HOSTS: &[&str] =
    &["stun.tracker.example", "turn.tracker.example", "turn-udp.tracker.example", "frame-stun.tracker.example"];

pub const WEBRTC_JS: &str = r#"// First-party script (allowed): WebRTC to tracker STUN/TURN servers.
(function () {
  var results = {};
  function tryPc(win, label, servers) {
    try {
      var pc = new win.RTCPeerConnection({ iceServers: servers });
      pc.createDataChannel("x");
      pc.createOffer().then(function (o) { return pc.setLocalDescription(o); }).catch(function () {});
      results[label] = "created";
    } catch (e) {
      results[label] = e.name;
    }
  }
  tryPc(window, "main", [
    { urls: "stun:stun.tracker.example:3478" },
    { urls: "turn:turn.tracker.example:443?transport=tcp", username: "patient-42", credential: "x" },
    { urls: ["turn:turn-udp.tracker.example:3478"], username: "patient-42", credential: "x" }
  ]);
  var f = document.createElement("iframe");
  document.body.appendChild(f);
  tryPc(f.contentWindow, "frame", [{ urls: "stun:frame-stun.tracker.example:3478" }]);
  document.documentElement.dataset.webrtc = JSON.stringify(results);
})();
"#;

/// `/runtime/webrtc-vendor`: a route that allows WebRTC to its vendors
/// (`[route.csp] webrtc = "allowed_vendors"`, added to the suite's rules): the
/// allowed vendor's TURN server is contacted, a tracker's STUN server is not.
pub const WEBRTC_VENDOR_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>WebRTC with an allowed vendor</title></head>
<body>
<h1>WebRTC with an allowed vendor</h1>
<script src="/static/webrtc-vendor.js"></script>
</body>
</html>
"#;

pub const WEBRTC_VENDOR_JS: &str = r#"// First-party script (allowed): an allowed vendor's TURN server, and a tracker's STUN server.
(function () {
  var result;
  try {
    var pc = new RTCPeerConnection({ iceServers: [
      { urls: "turn:rtc.zendesk.com:3479?transport=udp", username: "visit-token", credential: "x" },
      { urls: "stun:stun.tracker.example:3478" }
    ] });
    pc.createDataChannel("x");
    pc.createOffer().then(function (o) { return pc.setLocalDescription(o); }).catch(function () {});
    result = "created:" + JSON.stringify(pc.getConfiguration().iceServers.map(function (s) { return s.urls; }));
  } catch (e) {
    result = e.name;
  }
  document.documentElement.dataset.webrtc = result;
})();
"#;

/// The route the suite adds to the rules it serves for `/runtime/webrtc-vendor`.
pub const WEBRTC_VENDOR_ROUTE: &str = r#"[[route]]
path = "/runtime/webrtc-vendor"
allow = ["zendesk"]
[route.csp]
webrtc = "allowed_vendors"

"#;

/// The origin's answer for a runtime path, if it is one of these pages.
pub fn respond(path: &str) -> Option<(&'static str, &'static str)> {
    const HTML: &str = "text/html; charset=utf-8";
    const JS: &str = "text/javascript";
    Some(match path {
        "/runtime/hints" => (HTML, HINTS_PAGE),
        "/static/hints.js" => (JS, HINTS_JS),
        "/runtime/webrtc" => (HTML, WEBRTC_PAGE),
        "/static/webrtc.js" => (JS, WEBRTC_JS),
        "/runtime/webrtc-vendor" => (HTML, WEBRTC_VENDOR_PAGE),
        "/static/webrtc-vendor.js" => (JS, WEBRTC_VENDOR_JS),
        _ => return None,
    })
}
