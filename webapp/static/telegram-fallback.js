// Stands in for telegram-web-app.js when telegram.org's script could not load (an offline machine, a
// network that blocks it, a local preview). Like the real script, it reads the launch parameters Telegram
// puts in the address's fragment (tgWebAppData, tgWebAppThemeParams, tgWebAppVersion), so the address
// `entitle initdata sign --url` prints opens the Mini App signed in, in any browser. Inside Telegram the
// real script has loaded and this does nothing.
(function () {
  "use strict";
  if (window.Telegram && window.Telegram.WebApp) return;

  var launch = new URLSearchParams(window.location.hash.slice(1));
  var initData = launch.get("tgWebAppData") || "";

  function parsed(text, fallback) {
    try { return JSON.parse(text); } catch (e) { return fallback; }
  }

  var unsafe = {};
  new URLSearchParams(initData).forEach(function (value, key) {
    unsafe[key] = /^(user|receiver|chat)$/.test(key) ? parsed(value, null) : value;
  });

  var theme = parsed(launch.get("tgWebAppThemeParams") || "{}", {}) || {};
  Object.keys(theme).forEach(function (key) {
    if (typeof theme[key] === "string" && /^#[0-9a-fA-F]{3,8}$/.test(theme[key])) {
      document.documentElement.style.setProperty("--tg-theme-" + key.replace(/_/g, "-"), theme[key]);
    }
  });
  var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;

  function noop() {}

  window.Telegram = {
    WebApp: {
      initData: initData,
      initDataUnsafe: unsafe,
      version: launch.get("tgWebAppVersion") || "6.0",
      platform: launch.get("tgWebAppPlatform") || "unknown",
      colorScheme: dark ? "dark" : "light",
      themeParams: theme,
      isExpanded: true,
      ready: noop,
      expand: noop,
      onEvent: noop,
      offEvent: noop,
      isVersionAtLeast: function () { return true; },
      close: function () { window.close(); },
      openLink: function (url) { window.open(url, "_blank", "noopener"); },
      // A browser cannot pay in Stars: show the invoice link, and tell the page nothing was paid.
      openInvoice: function (url, callback) {
        window.open(url, "_blank", "noopener");
        if (callback) setTimeout(function () { callback("cancelled"); }, 0);
      },
    },
  };
})();
