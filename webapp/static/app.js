// The Mini App: sign in with Telegram's initData, show what the user holds, sell the plans.
(function () {
  "use strict";

  var tg = window.Telegram && window.Telegram.WebApp;
  var session = null; // {token, expiresAt, payments}
  var plans = [];
  var entitlements = [];
  var subscriptions = []; // the payer's subscriptions, from /api/subscriptions
  var user = null;
  var noCardAccount = false; // the server said this payer has no card payments to manage
  var awaitingCheckout = false;
  // Opened by a chat's join request (sendChatJoinRequestWebApp): the paywall of that chat.
  var joinToken = new URLSearchParams(location.search).get("join");
  var paywall = null; // {chat: {id, title}, state, plans}

  var $ = function (id) { return document.getElementById(id); };

  function show(view) {
    ["loading", "outside", "failed", "content"].forEach(function (id) {
      $(id).hidden = id !== view;
    });
    $("app").setAttribute("aria-busy", view === "loading" ? "true" : "false");
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  function notify(message, isError) {
    var box = $("notice");
    box.textContent = message || "";
    box.classList.toggle("error", !!isError);
    box.hidden = !message;
  }

  // --- API -------------------------------------------------------------------------------

  function request(method, path, body, token) {
    var headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token) headers.Authorization = "Bearer " + token;
    return fetch(path, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (response.ok) return data;
        var error = new Error((data.error && data.error.message) || "The server answered " + response.status + ".");
        error.status = response.status;
        error.code = data.error && data.error.code;
        throw error;
      });
    }, function () {
      var error = new Error("No connection to the server. Check your network and try again.");
      error.code = "network";
      throw error;
    });
  }

  function signIn() {
    return request("POST", "/api/session", { init_data: tg.initData }).then(function (data) {
      session = {
        token: data.access_token,
        // Renew a little early so a request never leaves with a token about to lapse.
        expiresAt: Date.now() + (data.expires_in - 30) * 1000,
        payments: data.payments || { stars: true, card: true },
      };
      return data;
    });
  }

  // Signing in again once the session lapsed fails as the first sign-in can (most often: the page was
  // open longer than Telegram's initData stays acceptable); the payer then gets the same plain words.
  function signInAgain() {
    return signIn().catch(function (error) {
      if (error.status === 400 || error.status === 401) showFailure(error);
      throw error;
    });
  }

  // A request with the session token; signs in again once when the token has lapsed.
  function authed(method, path, body) {
    var ready = session && Date.now() < session.expiresAt ? Promise.resolve() : signInAgain();
    return ready
      .then(function () { return request(method, path, body, session.token); })
      .catch(function (error) {
        if (error.status !== 401 || !/^token_/.test(error.code || "")) throw error;
        return signInAgain().then(function () { return request(method, path, body, session.token); });
      });
  }

  // --- Rendering -------------------------------------------------------------------------

  function title(key) {
    var words = String(key).replace(/[_-]+/g, " ");
    return words.charAt(0).toUpperCase() + words.slice(1);
  }

  function formatDate(iso) {
    var date = new Date(iso);
    if (isNaN(date.getTime())) return iso;
    return date.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
  }

  function renderUser(data) {
    user = data;
    var name = [user.first_name, user.last_name].filter(Boolean).join(" ") || "Telegram user";
    $("user-name").textContent = name;
    $("user-handle").textContent = user.username ? "@" + user.username : "id " + user.id;
    $("avatar").textContent = name.charAt(0).toUpperCase();
    renderSections();
  }

  function renderEntitlements(list) {
    entitlements = list || [];
    renderSections();
  }

  // --- Sections --------------------------------------------------------------------------
  // The page is a list of sections, each a card of rows under a header, as Telegram's own settings
  // screens are. A feature adds its section here: `title` (a string, or a function of the page's state),
  // `rows()` returns the card's <li> rows (none leaves the section out), `footer()` an optional hint
  // under the card. The card's id is the section's id; its header's id is that id and "-title".

  var SECTIONS = [
    { id: "entitlements", title: "Your access", rows: entitlementRows },
    { id: "subscriptions", title: "Subscriptions", rows: subscriptionRows, footer: subscriptionsFooter },
    { id: "plans", title: plansTitle, rows: planRows, footer: plansFooter },
    { id: "billing", title: "Card payments", rows: billingRows, footer: billingFooter },
    { id: "code", title: "Have a code?", rows: codeRows, footer: codeFooter },
  ];

  function renderSections() {
    var root = $("sections");
    root.replaceChildren();
    SECTIONS.forEach(function (section) {
      var rows = section.rows() || [];
      if (!rows.length) return;
      var box = element("section", "section");
      box.id = "section-" + section.id;
      var header = element("h2", "section-header", typeof section.title === "function" ? section.title() : section.title);
      header.id = section.id + "-title";
      box.appendChild(header);
      var card = element("ul", "card");
      card.id = section.id;
      rows.forEach(function (row) { card.appendChild(row); });
      box.appendChild(card);
      var footer = section.footer && section.footer();
      if (footer) box.appendChild(element("p", "section-footer", footer));
      root.appendChild(box);
    });
  }

  function entitlementRows() {
    if (!entitlements.length) return [element("li", "empty", "Nothing yet — pick a plan below.")];
    return entitlements.map(function (item) {
      var li = element("li", "entitlement");
      li.dataset.entitlement = item.entitlement;
      var row = element("div", "row");
      row.appendChild(element("span", "name", title(item.entitlement)));
      row.appendChild(element("span", item.active ? "badge" : "badge inactive", item.active ? "Active" : "Inactive"));
      li.appendChild(row);
      li.appendChild(element("p", "hint until", item.expires_at ? "until " + formatDate(item.expires_at) : "lifetime"));
      return li;
    });
  }

  // --- Subscriptions ---------------------------------------------------------------------

  var SUBSCRIPTION_STATES = { active: "Renews", canceled: "Canceled", past_due: "Payment failed", ended: "Ended" };

  function subscriptionTerms(item) {
    if (item.state === "active") return "Renews on " + formatDate(item.period_end);
    if (item.state === "canceled") return "Yours until " + formatDate(item.period_end) + "; it will not renew";
    if (item.state === "past_due") {
      return "The renewal could not be charged; yours until " + formatDate(item.grace_until || item.period_end);
    }
    return "Ended" + (item.ended_at ? " on " + formatDate(item.ended_at) : "");
  }

  function subscriptionRows() {
    return subscriptions.filter(function (item) { return item.state !== "ended"; }).map(function (item) {
      var li = element("li", "subscription");
      li.dataset.subscription = item.id;
      li.dataset.state = item.state;
      var row = element("div", "row");
      row.appendChild(element("span", "name", item.title));
      row.appendChild(element("span", item.state === "active" ? "badge" : "badge inactive", SUBSCRIPTION_STATES[item.state]));
      li.appendChild(row);
      li.appendChild(element("p", "hint terms", subscriptionTerms(item)));
      var action = item.state === "canceled" ? "resume" : "cancel";
      var label = action === "resume" ? "Resume" : "Cancel renewal";
      var button = element("button", "button secondary subscription-" + action, label);
      button.type = "button";
      button.addEventListener("click", function () { changeSubscription(item, action, button); });
      var actions = element("div", "actions");
      actions.appendChild(button);
      li.appendChild(actions);
      return li;
    });
  }

  function subscriptionsFooter() {
    return "Canceling stops the next renewal; you keep what you paid for until the date shown.";
  }

  function loadSubscriptions() {
    return authed("GET", "/api/subscriptions").then(function (data) {
      subscriptions = data.subscriptions || [];
      renderSections();
    }, function () { /* the rest of the page works without them */ });
  }

  function changeSubscription(item, action, button) {
    button.disabled = true;
    notify("");
    authed("POST", "/api/subscriptions/" + item.id + "/" + action)
      .then(function (data) {
        var now = data.subscription;
        subscriptions = subscriptions.map(function (s) { return s.id === now.id ? now : s; });
        if (action === "cancel") {
          notify(now.state === "ended" ? now.title + " has ended." :
            now.title + " is canceled. It stays yours until " + formatDate(now.period_end) + ".");
        } else {
          notify(now.title + " renews again on " + formatDate(now.period_end) + ".");
        }
        renderSections();
      })
      .catch(function (error) {
        button.disabled = false;
        notify(error.message, true);
      });
  }

  function payments() {
    return (session && session.payments) || {};
  }

  // Only someone who has paid by card has a Stripe billing account to manage.
  function billingRows() {
    if (payments().card === false || !user || !user.stripe_customer || noCardAccount) return [];
    var li = element("li", "action-row");
    var button = element("button", "row-button", "Manage card payments");
    button.type = "button";
    button.id = "manage-card";
    button.addEventListener("click", manageCard);
    li.appendChild(button);
    return [li];
  }

  function billingFooter() {
    return "Change your card, see your receipts or cancel a card subscription.";
  }

  function plansTitle() {
    return paywall ? "Plans that open this chat" : "Plans";
  }

  function plansFooter() {
    var byCard = payments().card !== false && plans.some(function (plan) { return plan.sold_by_card; });
    return byCard ? "Card payments open Stripe's secure checkout page." : "";
  }

  function planTerms(plan) {
    if (plan.stars_subscription) return "renews every 30 days";
    if (plan.stripe_mode === "subscription" && !plan.sold_for_stars) return "subscription";
    return plan.days ? plan.days + " days" : "lifetime";
  }

  // A drawn star rather than the ⭐ emoji, which needs an emoji font some systems lack.
  function starsLabel(button, plan) {
    var per = plan.stars_subscription ? " / month" : "";
    button.setAttribute("aria-label", "Pay " + plan.stars + " Telegram Stars" + (per ? " per month" : ""));
    button.appendChild(document.createTextNode("Pay " + plan.stars + " "));
    var star = element("span", "star");
    star.setAttribute("aria-hidden", "true");
    button.appendChild(star);
    if (per) button.appendChild(document.createTextNode(per));
  }

  // "Pay by card · $4.99", "Subscribe by card · 4,99 € / month"; without a price Stripe gave, no amount.
  function cardLabel(plan) {
    var label = plan.stripe_mode === "subscription" ? "Subscribe by card" : "Pay by card";
    var price = plan.card_price;
    if (!price) return label;
    label += " · " + price.formatted;
    if (price.interval) {
      label += price.interval_count > 1 ? " / " + price.interval_count + " " + price.interval + "s" : " / " + price.interval;
    }
    return label;
  }

  function renderPlans() {
    renderSections();
  }

  function planRows() {
    if (!plans.length) return [element("li", "empty", "No plans are on sale right now.")];
    var ways = payments();
    return plans.map(function (plan) {
      var li = element("li", "plan");
      li.dataset.plan = plan.key;
      var row = element("div", "row");
      row.appendChild(element("span", "name", plan.title));
      row.appendChild(element("span", "hint", planTerms(plan)));
      li.appendChild(row);
      if (plan.description) li.appendChild(element("p", "hint description", plan.description));

      var actions = element("div", "actions");
      if (plan.sold_for_stars && ways.stars !== false) {
        var stars = element("button", "button buy-stars");
        stars.type = "button";
        starsLabel(stars, plan);
        stars.addEventListener("click", function () { buyWithStars(plan); });
        actions.appendChild(stars);
      }
      if (plan.sold_by_card && ways.card !== false) {
        var card = element("button", "button secondary buy-card", cardLabel(plan));
        card.type = "button";
        card.addEventListener("click", function () { buyByCard(plan); });
        actions.appendChild(card);
      }
      if (plan.trial_days && !trialTaken(plan)) {
        var trial = element("button", "button secondary start-trial", "Try free for " + plan.trial_days + " days");
        trial.type = "button";
        trial.addEventListener("click", function () { startTrial(plan); });
        actions.appendChild(trial);
      }
      if (plan.sold_for_stars && !plan.stars_subscription && ways.stars !== false && !paywall) {
        var gift = element("button", "button secondary give-gift", "Gift");
        gift.type = "button";
        gift.setAttribute("aria-label", "Buy " + plan.title + " as a gift for someone else");
        gift.addEventListener("click", function () { buyGift(plan); });
        actions.appendChild(gift);
      }
      if (actions.children.length) li.appendChild(actions);
      return li;
    });
  }

  // --- Ways in: trials, codes and gifts ----------------------------------------------------

  // A trial is for someone who never held the plan's entitlement.
  function trialTaken(plan) {
    return entitlements.some(function (item) { return item.entitlement === plan.entitlement; });
  }

  function startTrial(plan) {
    setBusy(true);
    notify("");
    authed("POST", "/api/trial", { plan: plan.key })
      .then(function () {
        notify("Your free trial has started.");
        return refresh().then(renderPlans);
      })
      .catch(function (error) { notify(error.message, true); })
      .then(function () { setBusy(false); });
  }

  function buyGift(plan) {
    setBusy(true);
    notify("");
    authed("POST", "/api/invoice", { plan: plan.key, gift: true })
      .then(function (data) {
        tg.openInvoice(data.link, function (status) {
          setBusy(false);
          if (status === "paid") notify("Thank you! The bot sent you the gift's link to pass on.");
          else if (status === "failed") notify("The payment did not go through. Please try again.", true);
        });
      })
      .catch(function (error) {
        setBusy(false);
        notify(error.message, true);
      });
  }

  function codeRows() {
    if (paywall) return [];
    var li = element("li", "code-row");
    var form = element("form", "actions");
    var input = element("input", "code-input");
    input.id = "promo-code";
    input.type = "text";
    input.maxLength = 32;
    input.placeholder = "Promo code";
    input.autocomplete = "off";
    input.setAttribute("aria-label", "Promo code");
    var button = element("button", "button secondary redeem", "Redeem");
    button.type = "submit";
    form.appendChild(input);
    form.appendChild(button);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      redeemCode(input.value, button);
    });
    li.appendChild(form);
    return [li];
  }

  function codeFooter() {
    return paywall ? "" : "Codes work in any case. You can also send /redeem CODE to the bot.";
  }

  function redeemCode(code, button) {
    if (!code.trim()) return;
    button.disabled = true;
    notify("");
    authed("POST", "/api/redeem", { code: code.trim() })
      .then(function (data) {
        notify("Code " + data.code + " redeemed.");
        return refresh().then(renderPlans);
      })
      .catch(function (error) { notify(error.message, true); })
      .then(function () { button.disabled = false; });
  }

  function setBusy(busy) {
    document.querySelectorAll(".plan button").forEach(function (button) { button.disabled = busy; });
  }

  // What a payer reads when a request fails: plain words chosen by the error's code, never the
  // server's technical message (the server logs that). `doing` names what failed ("Starting the payment").
  function plainly(error, doing) {
    if (error.code === "network") return "No connection. Check your internet connection and try again.";
    if (error.status === 401) return "Your sign-in has ended. Close the app and open it again from the bot.";
    if (error.status === 429) return "Too many tries at once. Please wait a minute and try again.";
    if (error.status === 503) return doing + " is not possible yet. Please come back later.";
    if (error.status >= 500) return doing + " did not work just now. Please try again in a moment.";
    return doing + " is not possible for this plan right now.";
  }

  // --- Purchases -------------------------------------------------------------------------

  function buyWithStars(plan) {
    setBusy(true);
    notify("");
    authed("POST", "/api/invoice", { plan: plan.key })
      .then(function (data) {
        tg.openInvoice(data.link, function (status) {
          setBusy(false);
          invoiceClosed(status);
        });
      })
      .catch(function (error) {
        setBusy(false);
        notify(plainly(error, "Starting the payment"), true);
      });
  }

  function invoiceClosed(status) {
    if (status === "paid" && paywall && !paywall.error) {
      notify("Payment received — your request to join is being approved…");
    } else if (status === "paid" || status === "pending") {
      notify(status === "paid" ? "Payment received — updating your access…" : "Payment is being processed…");
      if (tg.HapticFeedback) tg.HapticFeedback.notificationOccurred("success");
      refreshUntilChanged();
    } else if (status === "failed") {
      notify("The payment did not go through. Please try again.", true);
    }
  }

  function buyByCard(plan) {
    setBusy(true);
    notify("");
    authed("POST", "/api/checkout", { plan: plan.key })
      .then(function (data) {
        awaitingCheckout = true;
        tg.openLink(data.url);
        notify("Finish paying in the browser, then come back here.");
      })
      .catch(function (error) { notify(plainly(error, "Opening the card payment page"), true); })
      .then(function () { setBusy(false); });
  }

  function manageCard() {
    var button = $("manage-card");
    button.disabled = true;
    notify("");
    authed("POST", "/api/portal")
      .then(function (data) { tg.openLink(data.url); })
      .catch(function (error) {
        if (error.code === "no_customer") {
          noCardAccount = true;
          renderSections();
          notify("You have not paid by card yet, so there are no card payments to manage.", true);
        } else {
          notify(plainly(error, "Opening your card payments"), true);
        }
      })
      .then(function () { button.disabled = false; });
  }

  function refresh() {
    return authed("GET", "/api/me").then(function (data) {
      renderUser(data.user);
      renderEntitlements(data.entitlements);
      return data;
    });
  }

  // The payment is granted by a background worker, so the new access can take a moment to appear.
  function refreshUntilChanged() {
    var before = JSON.stringify(entitlements);
    var attempt = 0;
    function poll() {
      return refresh().then(function (data) {
        if (JSON.stringify(data.entitlements) !== before) {
          notify("Your access is updated.");
          loadSubscriptions();
          if (joinToken) return sleep(1500).then(loadPaywall).then(renderPlans);
          return;
        }
        if (++attempt >= 8) {
          notify("Payment received. Your access will show up shortly; reopen the app if it does not.");
          return;
        }
        return sleep(1500).then(poll);
      });
    }
    return poll().catch(function (error) { notify(plainly(error, "Updating your access"), true); });
  }

  function returned() {
    if (!awaitingCheckout || document.visibilityState === "hidden") return;
    awaitingCheckout = false;
    refreshUntilChanged();
  }

  // Card prices come written for the payer's language: Telegram's, else the browser's.
  function languageQuery() {
    var user = tg.initDataUnsafe && tg.initDataUnsafe.user;
    var language = (user && user.language_code) || navigator.language || "";
    return /^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}$/.test(language) ? "?lang=" + encodeURIComponent(language) : "";
  }

  // --- Start -----------------------------------------------------------------------------

  var REOPEN = "Close the app and open it again from the bot.";

  // What a payer reads when sign-in fails: plain words and the one thing that helps. The technical
  // reason goes to the server's log (and `entitle initdata debug`), never to the payer.
  function failure(error) {
    if (error.code === "network") {
      return { title: "No connection", message: "Check your internet connection, then try again.", retry: true };
    }
    if (error.code === "telegram_not_configured") {
      return { title: "Not open yet", message: "This app is not ready to take payments yet. Please come back later.", retry: false };
    }
    if (error.status >= 500 || error.status === 429) {
      return { title: "Something went wrong on our side", message: "Please try again in a moment.", retry: true };
    }
    if (error.code === "expired") {
      return { title: "This page was open too long", message: "For your safety, sign-in expires after a while. " + REOPEN, retry: false };
    }
    return { title: "We could not confirm your Telegram account", message: REOPEN, retry: false };
  }

  function showFailure(error) {
    var said = failure(error);
    $("failed-title").textContent = said.title;
    $("failed-message").textContent = said.message;
    $("retry").hidden = !said.retry;
    // Closing is the way out unless trying again can help.
    $("close").classList.toggle("secondary", said.retry);
    $("failed").dataset.reason = error.code || String(error.status || "");
    show("failed");
  }

  function load() {
    show("loading");
    Promise.all([signIn(), request("GET", "/api/plans" + languageQuery())])
      .then(function (results) {
        plans = results[1].plans || [];
        renderUser(results[0].user);
        renderEntitlements(results[0].entitlements);
        return Promise.all([joinToken ? loadPaywall() : null, loadSubscriptions()]);
      })
      .then(function () {
        renderPlans();
        show("content");
        askForEmojiStatus();
      })
      .catch(showFailure);
  }

  // --- The chat door ---------------------------------------------------------------------

  var PAYWALL_SAID = {
    paywall: "Pay for one of these plans and your request to join is approved at once.",
    paid: "You are in: your request to join was approved.",
    approved: "You are in: your request to join was approved.",
    invited: "You are in: the bot sent you a link to join.",
  };

  function loadPaywall() {
    return authed("GET", "/api/paywall/" + encodeURIComponent(joinToken)).then(function (data) {
      paywall = data;
      // Only the plans that let the payer into this chat, with the card prices of /api/plans.
      var priced = {};
      plans.forEach(function (plan) { priced[plan.key] = plan; });
      plans = (data.plans || []).map(function (plan) { return priced[plan.key] || plan; });
      renderPaywall();
    }, function (error) {
      paywall = { error: error };
      renderPaywall();
    });
  }

  function renderPaywall() {
    var box = $("paywall");
    box.hidden = false;
    if (paywall.error) {
      $("paywall-title").textContent = "This invitation is not for you";
      $("paywall-hint").textContent = "Ask to join the chat again from your own Telegram account.";
      plans = [];
      return;
    }
    var chat = (paywall.chat && paywall.chat.title) || "this chat";
    $("paywall-title").textContent = "Join " + chat;
    $("paywall-hint").textContent = PAYWALL_SAID[paywall.state] ||
      "This request to join has ended. Ask to join the chat again to see the plans.";
    if (paywall.state !== "paywall") plans = [];
  }

  // Entitlements may give an emoji status; ask once per session of the app, and never again after a no.
  function askForEmojiStatus() {
    if (typeof tg.requestEmojiStatusAccess !== "function") return;
    var asked = "entitle-emoji-status-asked";
    try {
      if (sessionStorage.getItem(asked)) return;
    } catch (e) { return; }
    authed("GET", "/api/emoji-status").then(function (data) {
      if (!data.perks || !data.perks.length || data.allowed === true) return;
      try { sessionStorage.setItem(asked, "1"); } catch (e) { /* private mode: ask anyway, once here */ }
      tg.requestEmojiStatusAccess(function (allowed) {
        authed("POST", "/api/emoji-status", { allowed: !!allowed }).catch(function () {});
      });
    }).catch(function () {});
  }

  function start() {
    if (!tg || !tg.initData) {
      show("outside");
      return;
    }
    tg.ready();
    if (tg.expand) tg.expand();
    // Telegram's frame around the page takes the page's background, as on its own settings screens.
    if (typeof tg.setHeaderColor === "function" && tg.isVersionAtLeast("6.1")) {
      tg.setHeaderColor("secondary_bg_color");
      tg.setBackgroundColor("secondary_bg_color");
    }
    $("retry").addEventListener("click", load);
    $("close").addEventListener("click", function () { tg.close(); });
    document.addEventListener("visibilitychange", returned);
    if (tg.onEvent) tg.onEvent("activated", returned);
    load();
  }

  start();
})();
