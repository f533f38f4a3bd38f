/* tagwarden run-time shim. Served first-party by tagwarden, first in <head>,
 * nonced. It governs what no CSP directive governs (resource hints, WebRTC ICE
 * servers) and maps allowed vendors' hosts to the first-party path. It loosens
 * nothing: the Content-Security-Policy stays the boundary underneath.
 * Configuration: the JSON in this script element's data-tw attribute. */
(function () {
  "use strict";
  var me = document.currentScript;
  if (!me) return;
  var cfg;
  try { cfg = JSON.parse(me.getAttribute("data-tw") || "{}"); } catch (e) { return; }
  var prefix = String(cfg.prefix || "/_tw");
  var selfHosts = cfg.self || [];
  var vendors = cfg.vendors || [];
  var webrtc = cfg.webrtc === "allowed_vendors" ? "allowed_vendors" : "block";
  var shimSrc = me.src;
  var nonce = me.nonce || me.getAttribute("nonce") || "";
  var dataTw = me.getAttribute("data-tw") || "{}";
  var HINTS = { "preconnect": 1, "dns-prefetch": 1, "prefetch": 1, "prerender": 1, "preload": 1, "modulepreload": 1 };
  var RAW_TEXT = { "script": 1, "style": 1, "textarea": 1, "title": 1, "xmp": 1, "iframe": 1, "noembed": 1, "noframes": 1, "plaintext": 1 };
  var MARKUP_RE = /<(link|iframe|frame|img|script|source|audio|video)[\s\/>]/i;
  // Elements whose URL attributes an allowed vendor's URL is mapped in.
  var URL_ATTRS = {
    "script": ["src"], "img": ["src", "srcset"], "iframe": ["src"], "source": ["src", "srcset"],
    "audio": ["src"], "video": ["src", "poster"], "track": ["src"], "embed": ["src"], "object": ["data"]
  };
  var realFetch = window.fetch;
  var pageHost = location.hostname.toLowerCase();

  // === hosts ===
  function matches(pattern, host) {
    if (pattern.indexOf("*.") === 0) {
      var suffix = pattern.slice(1);
      return host.length > suffix.length && host.slice(-suffix.length) === suffix;
    }
    return host === pattern;
  }
  function anyMatch(list, host) {
    for (var i = 0; i < list.length; i++) if (matches(list[i], host)) return true;
    return false;
  }
  function vendorFor(host) {
    for (var i = 0; i < vendors.length; i++) if (anyMatch(vendors[i].hosts || [], host)) return vendors[i];
    return null;
  }
  function isOwn(host) {
    return host === pageHost || anyMatch(selfHosts, host);
  }
  /* What may happen with a URL the page wants the browser to connect to:
   * {own}, {vendor, url: first-party URL or the same URL for direct vendors},
   * or {blocked}. */
  function judge(raw, base) {
    var u;
    try { u = new URL(String(raw), base || document.baseURI); } catch (e) { return { own: true }; }
    var scheme = u.protocol;
    if (scheme !== "http:" && scheme !== "https:" && scheme !== "ws:" && scheme !== "wss:") return { own: true };
    var host = u.hostname.toLowerCase().replace(/\.$/, "");
    if (isOwn(host)) return { own: true };
    var v = vendorFor(host);
    if (!v) return { blocked: u };
    if (!v.first_party) return { vendor: v, url: u.href };
    var ws = scheme === "ws:" || scheme === "wss:";
    var origin = (ws ? (location.protocol === "https:" ? "wss://" : "ws://") + location.host : location.origin);
    return { vendor: v, url: origin + prefix + "/" + v.id + "/" + host + u.pathname + u.search };
  }

  // An allowed vendor's URL → its first-party path; anything else unchanged
  // (the CSP decides about it).
  function mapUrl(raw, base) {
    if (raw === null || raw === undefined) return raw;
    var j = judge(raw, base);
    return j.vendor && j.vendor.first_party ? j.url : raw;
  }
  function mapSrcset(value, base) {
    return String(value).split(",").map(function (part) {
      var p = part.trim().split(/\s+/);
      if (p[0]) p[0] = mapUrl(p[0], base);
      return p.join(" ");
    }).join(", ");
  }

  // === reports: the CSP report endpoint, so the dashboard shows who tried ===
  function report(directive, blocked) {
    var where = "";
    try { var u = new URL(String(blocked)); where = u.protocol + "//" + u.host + u.pathname; } catch (e) { where = String(blocked).split("?")[0].slice(0, 200); }
    var body = JSON.stringify({ "csp-report": { "effective-directive": directive, "blocked-uri": where } });
    try {
      realFetch.call(window, prefix + "/csp-report", {
        method: "POST", body: body, keepalive: true, credentials: "omit",
        headers: { "content-type": "application/csp-report" }
      }).catch(function () {});
    } catch (e) { /* reporting is best effort */ }
  }

  function install(win) {
    if (!win) return;
    try {
      if (win.__tagwardenShim) return;
      Object.defineProperty(win, "__tagwardenShim", { value: true });
    } catch (e) { return; } // cross-origin: its own document carries its own shim
    var E = win.Element.prototype, N = win.Node.prototype, D = win.Document.prototype;
    var L = win.HTMLLinkElement.prototype, F = win.HTMLIFrameElement.prototype;
    var setAttr = E.setAttribute, getAttr = E.getAttribute, removeAttr = E.removeAttribute;
    var setAttrNS = E.setAttributeNS;
    // win.document at call time: a frame's initial about:blank document can be
    // replaced by another in the same window (and realm) after install.
    var tplCreate = function () { return D.createElement.call(win.document, "template"); };
    var innerDesc = Object.getOwnPropertyDescriptor(E, "innerHTML");

    // --- resource hints ---
    // A connected link acts as soon as an attribute changes, so every change is
    // judged *before* it is applied.
    function relIsHint(rel) {
      var list = String(rel || "").toLowerCase().split(/[\t\n\f\r ]+/);
      for (var i = 0; i < list.length; i++) if (HINTS[list[i]]) return true;
      return false;
    }
    function isHint(el) { return relIsHint(getAttr.call(el, "rel")); }
    function cleanSrcset(value, el) {
      var parts = String(value).split(","), kept = [];
      for (var k = 0; k < parts.length; k++) {
        var p = parts[k].trim().split(/\s+/);
        if (!p[0]) continue;
        var j = judge(p[0], el.baseURI);
        if (j.blocked) { report("resource-hint", j.blocked.href); continue; }
        if (j.vendor) p[0] = j.url;
        kept.push(p.join(" "));
      }
      return kept.join(", ");
    }
    // The value to set for attribute `name` of `el` (rewritten to the first-party
    // path for an allowed vendor), or null: not to be set at all.
    function preAttr(el, name, value) {
      if (!el) return value;
      var n = String(name).toLowerCase();
      if (el.localName !== "link") {
        if (URL_ATTRS[el.localName] && URL_ATTRS[el.localName].indexOf(n) !== -1) {
          return n === "srcset" ? mapSrcset(value, el.baseURI) : mapUrl(value, el.baseURI);
        }
        return value;
      }
      if (n === "rel") { if (relIsHint(value)) fixLink(el, true); return value; }
      if (!isHint(el)) return n === "href" ? mapUrl(value, el.baseURI) : value;
      if (n === "href") {
        var j = judge(value, el.baseURI);
        if (j.blocked) {
          setAttr.call(el, "data-tw-blocked", "resource-hint");
          report("resource-hint", j.blocked.href);
          return null;
        }
        return j.vendor ? j.url : value;
      }
      if (n === "imagesrcset") return cleanSrcset(value, el);
      return value;
    }
    // A link about to be inserted (or about to become a hint).
    function fixLink(el, becomingHint) {
      if (!el || el.localName !== "link" || !(becomingHint || isHint(el))) return;
      var href = getAttr.call(el, "href");
      if (href !== null) {
        var j = judge(href, el.baseURI);
        if (j.blocked) {
          removeAttr.call(el, "href");
          setAttr.call(el, "data-tw-blocked", "resource-hint");
          report("resource-hint", j.blocked.href);
        } else if (j.vendor && j.url !== href) {
          setAttr.call(el, "href", j.url);
        }
      }
      var srcset = getAttr.call(el, "imagesrcset");
      if (srcset !== null) setAttr.call(el, "imagesrcset", cleanSrcset(srcset, el));
    }
    // Every link in a node about to be inserted (and every same-origin frame after).
    function mapAttrs(el) {
      var names = URL_ATTRS[el.localName];
      if (!names) return;
      for (var i = 0; i < names.length; i++) {
        var v = getAttr.call(el, names[i]);
        if (v === null) continue;
        var m = names[i] === "srcset" ? mapSrcset(v, el.baseURI) : mapUrl(v, el.baseURI);
        if (m !== v) setAttr.call(el, names[i], m);
      }
    }
    var URL_SELECTOR = Object.keys(URL_ATTRS).join(",");
    function scrub(node) {
      if (!node || typeof node !== "object" || !node.nodeType) return;
      if (node.nodeType === 1) { fixLink(node, false); mapAttrs(node); }
      if ((node.nodeType === 1 || node.nodeType === 11) && node.querySelectorAll) {
        var els = node.querySelectorAll(URL_SELECTOR);
        for (var u = 0; u < els.length; u++) mapAttrs(els[u]);
      }
      if (node.nodeType === 1 || node.nodeType === 9 || node.nodeType === 11) {
        var links = node.querySelectorAll ? node.querySelectorAll("link") : [];
        for (var i = 0; i < links.length; i++) fixLink(links[i], false);
        var tpl = node.querySelectorAll ? node.querySelectorAll("template") : [];
        for (var t = 0; t < tpl.length; t++) scrub(tpl[t].content);
      }
    }
    function frames(node) {
      if (!node || typeof node !== "object" || !node.nodeType) return;
      var list = [];
      if (node.localName === "iframe" || node.localName === "frame") list.push(node);
      if (node.querySelectorAll) {
        var found = node.querySelectorAll("iframe, frame");
        for (var i = 0; i < found.length; i++) list.push(found[i]);
      }
      for (var k = 0; k < list.length; k++) {
        try { install(list[k].contentWindow); } catch (e) { /* cross-origin */ }
      }
    }
    function wrapInsert(proto, name) {
      var orig = proto && proto[name];
      if (typeof orig !== "function") return;
      proto[name] = function () {
        for (var i = 0; i < arguments.length; i++) scrub(arguments[i]);
        var r = orig.apply(this, arguments);
        for (var k = 0; k < arguments.length; k++) frames(arguments[k]);
        return r;
      };
    }
    ["appendChild", "insertBefore", "replaceChild"].forEach(function (n) { wrapInsert(N, n); });
    ["append", "prepend", "before", "after", "replaceWith", "replaceChildren", "insertAdjacentElement"].forEach(function (n) { wrapInsert(E, n); });
    ["append", "prepend", "replaceChildren"].forEach(function (n) { wrapInsert(D, n); wrapInsert(win.DocumentFragment.prototype, n); });
    ["before", "after", "replaceWith"].forEach(function (n) { wrapInsert(win.CharacterData.prototype, n); });
    ["insertNode", "surroundContents"].forEach(function (n) { wrapInsert(win.Range.prototype, n); });

    // Markup: parsed inert (a template), cleaned, then inserted.
    function parse(html) {
      var t = tplCreate();
      innerDesc.set.call(t, html);
      scrub(t.content);
      return t;
    }
    function needs(html) { return MARKUP_RE.test(String(html)); }
    function wrapHTMLSetter(proto, prop) {
      var d = proto && Object.getOwnPropertyDescriptor(proto, prop);
      if (!d || !d.set) return;
      Object.defineProperty(proto, prop, {
        configurable: true, enumerable: d.enumerable, get: d.get,
        set: function (html) {
          var el = this;
          if (!needs(html) || RAW_TEXT[el.localName] || el.localName === "template") { d.set.call(el, html); frames(el); return; }
          var t = parse(html);
          if (prop === "outerHTML") {
            var parent = el.parentNode;
            d.set.call(el, innerDesc.get.call(t));
            if (parent) frames(parent);
          } else {
            d.set.call(el, "");
            N.appendChild.call(el, t.content);
            frames(el);
          }
        }
      });
    }
    wrapHTMLSetter(E, "innerHTML");
    wrapHTMLSetter(E, "outerHTML");
    wrapHTMLSetter(win.ShadowRoot && win.ShadowRoot.prototype, "innerHTML");
    var iah = E.insertAdjacentHTML;
    E.insertAdjacentHTML = function (where, html) {
      if (!needs(html)) { iah.call(this, where, html); frames(this.parentNode || this); return; }
      iah.call(this, where, innerDesc.get.call(parse(html)));
      frames(this.parentNode || this);
    };
    ["setHTMLUnsafe"].forEach(function (n) {
      [E, win.ShadowRoot && win.ShadowRoot.prototype].forEach(function (proto) {
        var orig = proto && proto[n];
        if (typeof orig !== "function") return;
        proto[n] = function (html) {
          orig.call(this, html);
          // Declarative shadow roots and links land in place: clean what was parsed.
          scrub(this);
          var all = this.querySelectorAll ? this.querySelectorAll("*") : [];
          for (var i = 0; i < all.length; i++) if (all[i].shadowRoot) scrub(all[i].shadowRoot);
          frames(this);
        };
      });
    });
    var ccf = win.Range.prototype.createContextualFragment;
    win.Range.prototype.createContextualFragment = function (html) {
      var f = ccf.call(this, html);
      scrub(f);
      return f;
    };
    ["write", "writeln"].forEach(function (n) {
      var orig = D[n];
      D[n] = function () {
        var html = Array.prototype.join.call(arguments, "");
        if (needs(html)) html = innerDesc.get.call(parse(html));
        var r = orig.call(this, html);
        frames(this);
        return r;
      };
    });

    // Attributes on a link that may already be in the document.
    E.setAttribute = function (name, value) {
      if (this.localName === "iframe" && String(name).toLowerCase() === "srcdoc") value = withShim(String(value));
      var v = preAttr(this, name, value);
      return v === null ? undefined : setAttr.call(this, name, v);
    };
    E.setAttributeNS = function (ns, name, value) {
      var v = ns ? value : preAttr(this, name, value);
      return v === null ? undefined : setAttrNS.call(this, ns, name, v);
    };
    ["rel", "href", "as", "imageSrcset"].forEach(function (prop) {
      var d = Object.getOwnPropertyDescriptor(L, prop);
      if (!d || !d.set) return;
      Object.defineProperty(L, prop, {
        configurable: true, enumerable: d.enumerable, get: d.get,
        set: function (v) { var x = preAttr(this, prop, v); if (x !== null) d.set.call(this, x); }
      });
    });
    var relList = Object.getOwnPropertyDescriptor(L, "relList");
    if (relList && relList.get) {
      Object.defineProperty(L, "relList", {
        configurable: true, enumerable: relList.enumerable,
        get: function () {
          var el = this, list = relList.get.call(el);
          ["add", "replace", "toggle"].forEach(function (m) {
            var orig = list[m];
            list[m] = function () {
              if (relIsHint(Array.prototype.join.call(arguments, " "))) fixLink(el, true);
              return orig.apply(list, arguments);
            };
          });
          var value = Object.getOwnPropertyDescriptor(win.DOMTokenList.prototype, "value");
          if (value && value.set) {
            Object.defineProperty(list, "value", {
              configurable: true, get: function () { return value.get.call(list); },
              set: function (v) { if (relIsHint(v)) fixLink(el, true); value.set.call(list, v); }
            });
          }
          return list;
        }
      });
    }
    var attrValue = Object.getOwnPropertyDescriptor(win.Attr.prototype, "value");
    if (attrValue && attrValue.set) {
      Object.defineProperty(win.Attr.prototype, "value", {
        configurable: true, enumerable: attrValue.enumerable, get: attrValue.get,
        set: function (v) { var x = preAttr(this.ownerElement, this.name, v); if (x !== null) attrValue.set.call(this, x); }
      });
    }
    ["setAttributeNode", "setAttributeNodeNS"].forEach(function (n) {
      var orig = E[n];
      if (typeof orig !== "function") return;
      E[n] = function (attr) {
        if (attr && attr.name) {
          var x = preAttr(this, attr.name, attr.value);
          if (x === null) return null;
          if (x !== attr.value) attrValue.set.call(attr, x);
        }
        return orig.call(this, attr);
      };
    });

    [["HTMLScriptElement", "src"], ["HTMLImageElement", "src"], ["HTMLImageElement", "srcset"],
     ["HTMLIFrameElement", "src"], ["HTMLSourceElement", "src"], ["HTMLSourceElement", "srcset"],
     ["HTMLMediaElement", "src"], ["HTMLVideoElement", "poster"], ["HTMLTrackElement", "src"],
     ["HTMLEmbedElement", "src"], ["HTMLObjectElement", "data"]].forEach(function (pair) {
      var C = win[pair[0]], d = C && Object.getOwnPropertyDescriptor(C.prototype, pair[1]);
      if (!d || !d.set) return;
      Object.defineProperty(C.prototype, pair[1], {
        configurable: true, enumerable: d.enumerable, get: d.get,
        set: function (v) { d.set.call(this, pair[1] === "srcset" ? mapSrcset(v, this.baseURI) : mapUrl(v, this.baseURI)); }
      });
    });

    // --- network APIs: an allowed vendor's URL goes to its first-party path ---
    var fetch0 = win.fetch;
    if (typeof fetch0 === "function") {
      win.fetch = function (input, init) {
        if (typeof input === "string" || (win.URL && input instanceof win.URL)) {
          input = mapUrl(String(input));
        } else if (input && typeof input.url === "string" && win.Request && input instanceof win.Request) {
          var m = mapUrl(input.url);
          if (m !== input.url) input = new win.Request(m, input);
        }
        return fetch0.call(this, input, init);
      };
    }
    var xhrOpen = win.XMLHttpRequest && win.XMLHttpRequest.prototype.open;
    if (xhrOpen) {
      win.XMLHttpRequest.prototype.open = function (method, url) {
        var args = Array.prototype.slice.call(arguments);
        args[1] = mapUrl(url);
        return xhrOpen.apply(this, args);
      };
    }
    ["WebSocket", "EventSource"].forEach(function (name) {
      var Orig = win[name];
      if (typeof Orig !== "function") return;
      function Mapped(url) {
        var args = Array.prototype.slice.call(arguments);
        args[0] = mapUrl(url);
        return Reflect.construct(Orig, args, new.target || Mapped);
      }
      Mapped.prototype = Orig.prototype;
      try { Object.setPrototypeOf(Mapped, Orig); } catch (e) { /* keeps statics */ }
      try { Object.defineProperty(Orig.prototype, "constructor", { value: Mapped, configurable: true, writable: true }); } catch (e) { /* frozen */ }
      try { Object.defineProperty(win, name, { value: Mapped, configurable: true, writable: true }); } catch (e) { win[name] = Mapped; }
    });
    var beacon = win.Navigator && win.Navigator.prototype.sendBeacon;
    if (beacon) {
      win.Navigator.prototype.sendBeacon = function (url, data) { return beacon.call(this, mapUrl(url), data); };
    }

    // --- same-origin child frames: patched as soon as they can be reached ---
    [F, win.HTMLFrameElement && win.HTMLFrameElement.prototype].forEach(function (proto) {
      var dw = proto && Object.getOwnPropertyDescriptor(proto, "contentWindow");
      var dd = proto && Object.getOwnPropertyDescriptor(proto, "contentDocument");
      if (!dw || !dw.get) return;
      Object.defineProperty(proto, "contentWindow", {
        configurable: true, enumerable: dw.enumerable,
        get: function () { var w = dw.get.call(this); try { install(w); } catch (e) { /* cross-origin */ } return w; }
      });
      if (dd && dd.get) {
        Object.defineProperty(proto, "contentDocument", {
          configurable: true, enumerable: dd.enumerable,
          get: function () { try { install(dw.get.call(this)); } catch (e) { /* cross-origin */ } return dd.get.call(this); }
        });
      }
    });
    // A srcdoc document is a new realm: it gets the shim as its first element.
    var srcdoc = Object.getOwnPropertyDescriptor(F, "srcdoc");
    if (srcdoc && srcdoc.set) {
      Object.defineProperty(F, "srcdoc", {
        configurable: true, enumerable: srcdoc.enumerable, get: srcdoc.get,
        set: function (v) { srcdoc.set.call(this, withShim(String(v))); }
      });
    }
    var open = win.open;
    if (typeof open === "function") {
      win.open = function () {
        var args = Array.prototype.slice.call(arguments);
        if (args.length && args[0] !== undefined && args[0] !== null && String(args[0]) !== "") {
          args[0] = mapUrl(args[0]);
        }
        var w = open.apply(this, args);
        try { install(w); } catch (e) { /* cross-origin */ }
        return w;
      };
    }
    // Frames the parser inserts: a mutation record is delivered at the microtask
    // checkpoint the parser performs before it runs the next script.
    try {
      new win.MutationObserver(function (records) {
        for (var i = 0; i < records.length; i++) {
          var added = records[i].addedNodes;
          for (var k = 0; k < added.length; k++) { scrub(added[k]); frames(added[k]); }
        }
      }).observe(win.document, { childList: true, subtree: true });
    } catch (e) { /* no observer: insertion hooks still apply */ }

    // --- WebRTC: ICE servers are connections no CSP directive governs ---
    ["RTCPeerConnection", "webkitRTCPeerConnection"].forEach(function (name) {
      var Orig = win[name];
      if (typeof Orig !== "function" || Orig.__tagwarden) return;
      var setConfiguration = Orig.prototype.setConfiguration;
      function Guarded(config) {
        var args = Array.prototype.slice.call(arguments);
        args[0] = checkIce(config);
        return Reflect.construct(Orig, args, new.target || Guarded);
      }
      Guarded.prototype = Orig.prototype;
      Object.defineProperty(Guarded, "__tagwarden", { value: true });
      try { Object.setPrototypeOf(Guarded, Orig); } catch (e) { /* keeps statics */ }
      try { Object.defineProperty(Orig.prototype, "constructor", { value: Guarded, configurable: true, writable: true }); } catch (e) { /* frozen */ }
      if (typeof setConfiguration === "function") {
        Orig.prototype.setConfiguration = function (config) { return setConfiguration.call(this, checkIce(config)); };
      }
      try { Object.defineProperty(win, name, { value: Guarded, configurable: true, writable: true }); } catch (e) { win[name] = Guarded; }
    });
  }

  function withShim(html) {
    if (html.indexOf("data-tw-shim") !== -1) return html;
    var esc = function (s) { return s.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;"); };
    return "<script data-tw-shim src=\"" + esc(shimSrc) + "\" nonce=\"" + esc(nonce) + "\" data-tw=\"" + esc(dataTw) + "\"></script>" + html;
  }

  // ICE server URLs: stun:host[:port], stuns:, turn:host[:port][?transport=…], turns:.
  function iceHost(url) {
    var m = /^(stuns?|turns?):(\[[^\]]*\]|[^:?]*)/i.exec(String(url).trim());
    return m ? m[2].toLowerCase().replace(/^\[|\]$/g, "").replace(/\.$/, "") : null;
  }
  function iceUrls(server) {
    var s = server || {};
    return typeof s.urls === "string" ? [s.urls] : (s.urls || (s.url ? [s.url] : []));
  }
  function iceHosts(config) {
    var out = [], servers = (config && config.iceServers) || [];
    for (var i = 0; i < servers.length; i++) {
      var urls = iceUrls(servers[i]);
      for (var j = 0; j < urls.length; j++) out.push(iceHost(urls[j]));
    }
    return out;
  }
  function iceAllowed(host) {
    if (host === null) return false;
    return isOwn(host) || vendorFor(host) !== null;
  }
  function checkIce(config) {
    if (webrtc === "block") {
      var hosts = iceHosts(config);
      if (!hosts.length) report("webrtc", "");
      for (var b = 0; b < hosts.length; b++) report("webrtc", "https://" + (hosts[b] || "invalid") + "/");
      throw new DOMException("RTCPeerConnection is not allowed on this page (tagwarden)", "NotAllowedError");
    }
    if (!config || !config.iceServers) return config;
    var out = {};
    for (var k in config) if (Object.prototype.hasOwnProperty.call(config, k)) out[k] = config[k];
    out.iceServers = [];
    for (var i = 0; i < config.iceServers.length; i++) {
      var s = config.iceServers[i] || {};
      var urls = iceUrls(s);
      var kept = [];
      for (var j = 0; j < urls.length; j++) {
        var h = iceHost(urls[j]);
        if (iceAllowed(h)) kept.push(urls[j]);
        else report("webrtc", "https://" + (h || "invalid") + "/");
      }
      if (kept.length) {
        var copy = {};
        for (var key in s) if (Object.prototype.hasOwnProperty.call(s, key)) copy[key] = s[key];
        copy.urls = kept;
        delete copy.url;
        out.iceServers.push(copy);
      }
    }
    return out;
  }

  install(window);
})();
