// The server-side session and this page: tell the server when a person uses the page (only
// that keeps a session from going idle; the page's own refreshes do not), and leave the page
// for the sign-in form once the session has ended (signed out elsewhere, idle, past its
// lifetime, ended by an admin), so an unattended screen stops showing police data.
(function () {
  "use strict";
  var CHECK_MS = 30000;
  var used = false;

  ["pointerdown", "keydown", "touchstart", "wheel"].forEach(function (name) {
    window.addEventListener(name, function () { used = true; }, {passive: true, capture: true});
  });

  function csrfToken() {
    var found = document.cookie.match(/(?:^|; )_csrf_token=([^;]*)/);
    return found ? decodeURIComponent(found[1]) : "";
  }

  function leave() {
    var here = location.pathname + location.search;
    location.assign("/login?ended=1&next=" + encodeURIComponent(here));
  }
  // live.js leaves the same way when push closes its socket because the session ended (4401).
  window.dispatchSession = {leave: leave};

  function check() {
    var reply = used
      ? fetch("/auth/activity", {method: "POST", credentials: "same-origin",
                                 headers: {"X-CSRFToken": csrfToken()}})
      : fetch("/auth/session", {credentials: "same-origin", cache: "no-store"});
    used = false;
    reply.then(function (answer) { if (answer.status === 403) { leave(); } },
               function () { /* offline: try again at the next check */ });
  }

  // A callback or token refresh refused with "sign in first" means the session has just
  // ended: leave at once instead of at the next check.
  var originalFetch = window.fetch;
  window.fetch = function () {
    return originalFetch.apply(this, arguments).then(function (answer) {
      if (answer.status === 403 && /\/(_dash-update-component|auth\/ws-token)$/.test(answer.url)) {
        answer.clone().json().then(function (body) {
          if (body && body.error === "sign in first") { leave(); }
        }, function () { /* not our refusal */ });
      }
      return answer;
    });
  };

  setInterval(check, CHECK_MS);
})();
