// Keeps an element marked data-live="URL" up to date by polling its fragment once a second. The server answers
// 304 while nothing changed (ETag), so idle polling is nearly free. Without JavaScript the page is simply static.
(function () {
  var el = document.querySelector("[data-live]");
  if (!el || !window.fetch) return;
  var etag = null;
  function tick() {
    var headers = etag ? { "If-None-Match": etag } : {};
    fetch(el.getAttribute("data-live"), { headers: headers, credentials: "same-origin" })
      .then(function (r) {
        if (r.status === 200) {
          etag = r.headers.get("ETag");
          return r.text().then(function (html) { el.innerHTML = html; });
        }
      })
      .catch(function () {})
      .then(function () { setTimeout(tick, 1000); });
  }
  setTimeout(tick, 1000);
})();
