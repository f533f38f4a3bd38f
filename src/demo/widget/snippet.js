/* mock Zendesk loader */
(function () {
  var me = document.getElementById("ze-snippet");
  var key = new URL(me.src, location.href).searchParams.get("key");
  var x = new XMLHttpRequest();
  x.open("GET", "https://ekr.zdassets.com/compose/" + key);
  x.onload = function () {
    var compose = JSON.parse(x.responseText);
    window.zEmbedCompose = compose;
    var f = document.createElement("iframe");
    f.title = "No content"; f.style.display = "none";
    document.body.appendChild(f);
    var d = f.contentDocument;
    d.open(); d.write("<!DOCTYPE html><html><head></head><body></body></html>"); d.close();
    compose.scripts.forEach(function (name) {
      var s = d.createElement("script");
      s.src = compose.baseUrl + name;
      d.body.appendChild(s);
    });
  };
  x.send();
})();
