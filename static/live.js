// Keeps every element marked data-live="URL" up to date by polling its fragment once a second (the dashboard's
// device table, the alarm banner on every page). The server answers 304 while nothing changed (ETag), so idle
// polling is nearly free; a redirect (signed out) is not followed. Without JavaScript the page is simply static.
(function () {
  if (!window.fetch) return;
  document.querySelectorAll("[data-live]").forEach(function (el) {
    var etag = null;
    function tick() {
      var headers = etag ? { "If-None-Match": etag } : {};
      fetch(el.getAttribute("data-live"), { headers: headers, credentials: "same-origin", redirect: "manual" })
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
  });
})();
