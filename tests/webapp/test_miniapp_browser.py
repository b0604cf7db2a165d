"""The Mini App page in headless Chromium: it signs in, shows what the user holds, and its buy buttons work.

Telegram's `telegram-web-app.js` is answered by a stand-in that carries initData signed with the
test token and records `openInvoice` / `openLink`. `/api/invoice`, `/api/checkout` and `/api/portal`
are answered in the browser too, so the test proves what the page sends to them, not how they charge.
Card prices come from the Stripe stand-in. The screenshots of each state in light and dark themes are
kept in docs/screenshots/; the others go to test-output/.
"""
from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path

import pytest

from app import entitlements, users
from app.models import User
from app.telegram.initdata import sign_init_data
from tests.support.stripe import stripe_env

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"

TOKEN = "7000000004:AAHBrowserTestTokenForTheMiniAppPage_00"
USER = {"id": 777002, "first_name": "Grace", "last_name": "Hopper", "username": "grace", "language_code": "en"}
# Telegram Desktop's night theme, as telegram-web-app.js would pass it in themeParams
# (https://docs.telegram-mini-apps.com/platform/theming), and a day theme like Telegram iOS's.
THEMES = {
    "dark": {
        "bg_color": "#17212b",
        "secondary_bg_color": "#232e3c",
        "section_bg_color": "#17212b",
        "header_bg_color": "#17212b",
        "text_color": "#f5f5f5",
        "hint_color": "#708499",
        "subtitle_text_color": "#708499",
        "link_color": "#6ab3f3",
        "button_color": "#5288c1",
        "button_text_color": "#ffffff",
        "section_header_text_color": "#6ab3f3",
        "accent_text_color": "#6ab2f2",
        "destructive_text_color": "#ec3942",
    },
    "light": {
        "bg_color": "#ffffff",
        "secondary_bg_color": "#efeff4",
        "section_bg_color": "#ffffff",
        "header_bg_color": "#f8f8f8",
        "text_color": "#000000",
        "hint_color": "#8e8e93",
        "subtitle_text_color": "#8e8e93",
        "link_color": "#007aff",
        "button_color": "#007aff",
        "button_text_color": "#ffffff",
        "section_header_text_color": "#6d6d72",
        "section_separator_color": "#c8c7cc",
        "accent_text_color": "#007aff",
        "destructive_text_color": "#ff3b30",
    },
}
THEME = THEMES["dark"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
INVOICE_LINK = "https://t.me/$browser-test-invoice"
CHECKOUT_URL = "https://checkout.stripe.com/c/pay/cs_test_browser"
PORTAL_URL = "https://billing.stripe.com/p/session/test_browser"

STAND_IN = """
(function () {
  var theme = %(theme)s;
  var calls = window.__telegram = { ready: 0, close: 0, openInvoice: [], openLink: [], invoiceCallbacks: [], colors: {} };
  // Like the real script: every themeParams key becomes a --tg-theme-* CSS variable.
  Object.keys(theme).forEach(function (key) {
    document.documentElement.style.setProperty("--tg-theme-" + key.replace(/_/g, "-"), theme[key]);
  });
  window.Telegram = { WebApp: {
    initData: %(init_data)s,
    initDataUnsafe: (function (raw) {
      // Like the real script: initData's fields, with user, receiver and chat parsed.
      var fields = {};
      new URLSearchParams(raw).forEach(function (value, key) {
        fields[key] = /^(user|receiver|chat)$/.test(key) ? JSON.parse(value) : value;
      });
      return fields;
    })(%(init_data)s),
    version: "8.0",
    platform: "tdesktop",
    colorScheme: %(color_scheme)s,
    themeParams: theme,
    ready: function () { calls.ready += 1; },
    close: function () { calls.close += 1; },
    setHeaderColor: function (color) { calls.colors.header = color; },
    setBackgroundColor: function (color) { calls.colors.background = color; },
    expand: function () {},
    onEvent: function () {},
    offEvent: function () {},
    isVersionAtLeast: function () { return true; },
    openInvoice: function (url, callback) { calls.openInvoice.push(url); calls.invoiceCallbacks.push(callback); },
    openLink: function (url) { calls.openLink.push(url); },
    HapticFeedback: { notificationOccurred: function () {} }
  } };
})();
"""


@pytest.fixture
def env(env, stripe_api):
    env["TELEGRAM_BOT_TOKEN"] = TOKEN
    # The card prices come from the Stripe stand-in; the checkout endpoint is answered in the browser.
    env.update(stripe_env(stripe_api))
    stripe_api.put_price(price_id="price_premium_month", unit_amount=499, currency="usd", interval="month")
    stripe_api.put_price(price_id="price_premium_week", unit_amount=1990, currency="eur", interval=None)
    return env


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright, or a skip saying what is missing (a failure in CI, which installs it)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium not found at {CHROMIUM}; .ci/run installs it")
        pytest.skip(f"Chromium not found at {CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


class MiniApp:
    """A page opened as Telegram would open it, with every call the page makes to the outside recorded."""

    def __init__(self, browser, base: str, init_data: str, before_open=None, scheme: str = "dark"):
        self.context = browser.new_context(viewport={"width": 420, "height": 900}, device_scale_factor=1, color_scheme=scheme)
        self.page = self.context.new_page()
        self.page.set_default_timeout(10_000)
        self.errors: list[str] = []
        self.base = base
        self.posted: dict[str, list[dict]] = {"/api/invoice": [], "/api/checkout": [], "/api/portal": []}
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

        # Nothing leaves the machine: only our server and the answers below are reachable.
        self.page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base) else route.abort())
        script = STAND_IN % {"theme": json.dumps(THEMES[scheme]), "init_data": json.dumps(init_data), "color_scheme": json.dumps(scheme)}
        self.page.route(
            "https://telegram.org/js/telegram-web-app.js*",
            lambda route: route.fulfill(status=200, content_type="application/javascript", body=script),
        )
        self.page.route(f"{base}/api/invoice", lambda route: self._answer(route, {"link": INVOICE_LINK}))
        self.page.route(f"{base}/api/checkout", lambda route: self._answer(route, {"url": CHECKOUT_URL, "id": "cs_test_browser"}))
        self.page.route(f"{base}/api/portal", lambda route: self._answer(route, {"url": PORTAL_URL}))
        if before_open:
            before_open(self.page)
        self.page.goto(f"{base}/app")

    def _answer(self, route, body: dict, status: int = 200) -> None:
        request = route.request
        path = "/" + request.url.split("/", 3)[3]
        self.posted[path].append(
            {"method": request.method, "body": request.post_data_json, "authorization": request.headers.get("authorization", "")}
        )
        route.fulfill(status=status, content_type="application/json", body=json.dumps(body))

    def telegram(self, name: str):
        """What the stand-in recorded for one Telegram.WebApp method."""
        return self.page.evaluate(f"window.__telegram.{name}")

    def screenshot(self, name: str, folder: Path = OUTPUT) -> Path:
        """Save a full-page screenshot under test-output/ (or `folder`)."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_app(browser, live_server):
    opened: list[MiniApp] = []

    def open_with(init_data: str, scheme: str = "dark") -> MiniApp:
        opened.append(MiniApp(browser, live_server, init_data, scheme=scheme))
        return opened[-1]

    yield open_with
    for mini_app in opened:
        mini_app.close()


def fresh_init_data(auth_date: float | None = None, **user) -> str:
    return sign_init_data(TOKEN, user={**USER, **user}, auth_date=int(auth_date or time.time()), chat_type="sender")


def test_the_page_signs_in_shows_entitlements_and_buys(open_app):
    user = users.ensure_user(USER["id"], first_name="Grace")
    entitlements.grant(user, "premium", source="manual", reference="browser-test-premium", days=30)

    mini_app = open_app(fresh_init_data())
    page = mini_app.page

    # Signed in, with the name from initData and what the user holds.
    page.locator("#content").wait_for(state="visible")
    assert page.locator("#user-name").inner_text() == "Grace Hopper"
    assert page.locator("#user-handle").inner_text() == "@grace"
    premium = page.locator('li[data-entitlement="premium"]')
    assert "Premium" in premium.inner_text() and "Active" in premium.inner_text()
    assert premium.locator(".until").inner_text().startswith("until ")
    assert mini_app.telegram("ready") == 1

    # The plans, with a button for each way they are sold.
    assert page.locator("li.plan").count() == 3
    month = page.locator('li[data-plan="premium_month"]')
    assert month.locator(".buy-stars").get_attribute("aria-label") == "Pay 250 Telegram Stars per month"
    assert month.locator(".buy-stars .star").count() == 1
    # Card prices as Stripe has them, in the payer's language.
    assert month.locator(".buy-card").inner_text() == "Subscribe by card · $4.99 / month"
    assert page.locator('li[data-plan="premium_week"] .buy-card').inner_text() == "Pay by card · €19.90"
    lifetime = page.locator('li[data-plan="supporter_lifetime"]')
    assert lifetime.locator(".buy-stars").get_attribute("aria-label") == "Pay 1000 Telegram Stars"
    assert lifetime.locator(".buy-card").count() == 0
    # Nothing bought by card yet: no billing account to manage.
    assert page.locator("#billing").is_hidden()

    # Telegram's theme, not the page's own colours: cards on the secondary background, as in Telegram's settings.
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(35, 46, 60)"
    assert page.evaluate("getComputedStyle(document.querySelector('#plans')).backgroundColor") == "rgb(23, 33, 43)"
    assert page.evaluate("getComputedStyle(document.querySelector('.buy-stars')).backgroundColor") == "rgb(82, 136, 193)"
    assert mini_app.telegram("colors") == {"header": "secondary_bg_color", "background": "secondary_bg_color"}
    assert mini_app.screenshot("miniapp-signed-in.png").stat().st_size > 0

    # Stars: the plan goes to /api/invoice with the session token, the link to openInvoice.
    lifetime.locator(".buy-stars").click()
    page.wait_for_function("() => window.__telegram.openInvoice.length === 1")
    [invoice] = mini_app.posted["/api/invoice"]
    assert invoice["method"] == "POST" and invoice["body"] == {"plan": "supporter_lifetime"}
    assert invoice["authorization"].startswith("Bearer ")
    assert mini_app.telegram("openInvoice") == [INVOICE_LINK]

    # Paid: the worker grants, Telegram reports "paid", and the page shows the new entitlement.
    entitlements.grant(user, "supporter", source="manual", reference="browser-test-supporter")
    page.evaluate("window.__telegram.invoiceCallbacks[0]('paid')")
    supporter = page.locator('li[data-entitlement="supporter"]')
    supporter.wait_for(state="visible")
    assert supporter.locator(".until").inner_text() == "lifetime"
    page.locator("#notice", has_text="Your access is updated.").wait_for(state="visible")

    # Card: the plan goes to /api/checkout, the Checkout page opens with openLink.
    month.locator(".buy-card").click()
    page.wait_for_function("() => window.__telegram.openLink.length === 1")
    [checkout] = mini_app.posted["/api/checkout"]
    assert checkout["method"] == "POST" and checkout["body"] == {"plan": "premium_month"}
    assert checkout["authorization"] == invoice["authorization"]
    assert mini_app.telegram("openLink") == [CHECKOUT_URL]

    mini_app.screenshot("miniapp-after-purchase.png")
    assert mini_app.errors == []


def test_card_prices_are_written_in_the_payers_language(open_app):
    mini_app = open_app(fresh_init_data(language_code="de"))
    page = mini_app.page

    page.locator("#content").wait_for(state="visible")
    week = page.locator('li[data-plan="premium_week"] .buy-card').inner_text()
    month = page.locator('li[data-plan="premium_month"] .buy-card').inner_text()
    assert week.replace("\xa0", " ") == "Pay by card · 19,90 €"
    assert month.replace("\xa0", " ") == "Subscribe by card · 4,99 $ / month"
    assert mini_app.errors == []


def with_stripe_customer() -> None:
    users.ensure_user(USER["id"], first_name="Grace")
    User.update(stripe_customer_id="cus_test_browser").where(User.telegram_id == USER["id"]).execute()


def test_a_card_payer_opens_the_billing_portal(open_app):
    with_stripe_customer()

    mini_app = open_app(fresh_init_data())
    page = mini_app.page

    manage = page.locator("#manage-card")
    manage.wait_for(state="visible")
    assert manage.inner_text() == "Manage card payments"
    mini_app.screenshot("miniapp-manage-card.png")

    # The portal session comes from /api/portal with the session token and opens with openLink.
    manage.click()
    page.wait_for_function("() => window.__telegram.openLink.length === 1")
    [portal] = mini_app.posted["/api/portal"]
    assert portal["method"] == "POST" and portal["authorization"].startswith("Bearer ")
    assert mini_app.telegram("openLink") == [PORTAL_URL]

    # A refusal is shown, and nothing opens.
    refuse_portal(mini_app, 502, "stripe_error", "Stripe could not open the billing portal just now; try again in a moment")
    manage.click()
    notice = page.locator("#notice.error", has_text="Opening your card payments did not work just now. Please try again in a moment.")
    notice.wait_for(state="visible")
    assert "Stripe could not open" not in notice.inner_text(), "the server's own words stay in its log"
    assert manage.is_enabled() and len(mini_app.posted["/api/portal"]) == 2
    mini_app.screenshot("miniapp-manage-card-failed.png")

    # No customer after all: said plainly, and the button goes.
    refuse_portal(mini_app, 404, "no_customer", "nothing was bought by card yet, so there is no billing account to manage")
    manage.click()
    page.locator("#notice.error", has_text="You have not paid by card yet").wait_for(state="visible")
    assert page.locator("#billing").is_hidden()
    assert mini_app.telegram("openLink") == [PORTAL_URL]
    assert mini_app.errors == []


@pytest.mark.parametrize(
    ("status", "code", "message", "said"),
    [
        (502, "telegram_error", "Telegram did not create the invoice: Bad Request: CURRENCY_TOTAL_AMOUNT_INVALID",
         "Starting the payment did not work just now. Please try again in a moment."),
        (503, "telegram_not_configured", "this service has no Telegram bot token", "Starting the payment is not possible yet. Please come back later."),
        (400, "not_sold_for_stars", "plan 'premium_week' is not sold for Telegram Stars", "Starting the payment is not possible for this plan right now."),
    ],
)
def test_a_failed_purchase_is_said_in_plain_words(open_app, status, code, message, said):
    mini_app = open_app(fresh_init_data())
    page = mini_app.page
    page.locator("#content").wait_for(state="visible")
    error = {"error": {"code": code, "message": message}}
    page.route(f"{mini_app.base}/api/invoice", lambda route: mini_app._answer(route, error, status=status))

    page.locator('li[data-plan="premium_week"] .buy-stars').click()

    notice = page.locator("#notice.error", has_text=said)
    notice.wait_for(state="visible")
    assert message not in notice.inner_text()
    assert page.locator('li[data-plan="premium_week"] .buy-stars').is_enabled()
    assert mini_app.telegram("openInvoice") == [] and mini_app.errors == []


def refuse_portal(mini_app: MiniApp, status: int, code: str, message: str) -> None:
    """Answer /api/portal from now on with an API error."""
    error = {"error": {"code": code, "message": message}}
    mini_app.page.route(f"{mini_app.base}/api/portal", lambda route: mini_app._answer(route, error, status=status))


def test_no_billing_portal_when_cards_are_not_sold(open_app):
    with_stripe_customer()
    mini_app = open_app(fresh_init_data())
    page = mini_app.page

    # The session answer as a server without Stripe would give it.
    def without_cards(route):
        response = route.fetch()
        body = response.json()
        body["payments"]["card"] = False
        route.fulfill(response=response, body=json.dumps(body))

    page.route(f"{mini_app.base}/api/session", without_cards)
    page.reload()
    page.locator("#content").wait_for(state="visible")
    assert page.locator(".buy-card").count() == 0
    assert page.locator("#billing").is_hidden()
    assert mini_app.errors == []


def test_outside_telegram_the_page_says_to_open_it_there(open_app):
    mini_app = open_app("")

    mini_app.page.locator("#outside").wait_for(state="visible")
    assert "Open this inside Telegram" in mini_app.page.locator("#outside").inner_text()
    assert mini_app.page.locator("#content").is_hidden()
    mini_app.screenshot("miniapp-outside-telegram.png")
    assert mini_app.errors == []


# Without Telegram's theme the page follows the browser's light or dark setting, still as cards on a grey page.
OWN_COLOURS = {"light": ("rgb(239, 239, 244)", "rgb(255, 255, 255)"), "dark": ("rgb(0, 0, 0)", "rgb(28, 28, 30)")}


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_address_initdata_sign_prints_opens_the_app_signed_in_without_telegram(browser, live_server, cli, scheme):
    user = users.ensure_user(USER["id"], first_name="Grace")
    entitlements.grant(user, "premium", source="manual", reference="browser-test-preview", days=30)
    signed = cli("initdata", "sign", "--user-id", str(USER["id"]), "--username", "grace", "--url", PUBLIC_URL=live_server)
    assert signed.exit_code == 0, signed.stderr
    url = signed.stdout.strip()

    # A plain browser where telegram.org cannot be reached: the page's own fallback stands in for Telegram's script.
    context = browser.new_context(viewport={"width": 420, "height": 900}, color_scheme=scheme)
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        asked_telegram: list[str] = []

        def only_the_service(route):
            if route.request.url.startswith(live_server):
                route.continue_()
            else:
                asked_telegram.append(route.request.url)
                route.abort()

        page.route("**/*", only_the_service)
        page.goto(url)

        page.locator("#content").wait_for(state="visible")
        assert page.locator("#user-handle").inner_text() == "@grace"
        assert "Active" in page.locator('li[data-entitlement="premium"]').inner_text()
        assert page.locator('li[data-plan="premium_week"] .buy-card').inner_text() == "Pay by card · €19.90"
        assert asked_telegram == ["https://telegram.org/js/telegram-web-app.js"]
        page_colour, card_colour = OWN_COLOURS[scheme]
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == page_colour
        assert page.evaluate("getComputedStyle(document.querySelector('#plans')).backgroundColor") == card_colour
        assert page.evaluate("Telegram.WebApp.colorScheme") == scheme
        assert errors == []
    finally:
        context.close()


def rgb(hex_color: str) -> str:
    red, green, blue = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgb({red}, {green}, {blue})"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_sections_are_cards_on_the_secondary_background_with_screenshots_of_each_state(open_app, scheme):
    """Keeps docs/screenshots/{light,dark}-{signed-in,plans,sign-in-failed}.png up to date."""
    user = users.ensure_user(USER["id"], first_name="Grace")
    # A fixed end date, so the screenshots change only when the page does.
    entitlements.grant(user, "premium", source="manual", reference="browser-test-screenshot", until=datetime(2031, 1, 31, 12))
    with_stripe_customer()
    theme = THEMES[scheme]

    mini_app = open_app(fresh_init_data(), scheme=scheme)
    page = mini_app.page
    page.locator("#content").wait_for(state="visible")

    # Grouped as Telegram's settings screens are: a header over a card per section, on the secondary background.
    assert page.locator(".section-header").all_text_contents() == ["Your access", "Plans", "Card payments", "Have a code?"]
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == rgb(theme["secondary_bg_color"])
    for card in ("#entitlements", "#plans", "#billing"):
        assert page.evaluate(f"getComputedStyle(document.querySelector('{card}')).backgroundColor") == rgb(theme["section_bg_color"])
    assert page.evaluate("getComputedStyle(document.querySelector('.section-header')).color") == rgb(theme["section_header_text_color"])
    assert page.evaluate("getComputedStyle(document.querySelector('.name')).color") == rgb(theme["text_color"])
    assert page.locator('li[data-entitlement="premium"] .until').inner_text() == "until Jan 31, 2031"
    # Both prices on each plan sold both ways.
    week = page.locator('li[data-plan="premium_week"]')
    assert week.locator(".buy-stars").inner_text().strip() == "Pay 75" and week.locator(".buy-card").inner_text() == "Pay by card · €19.90"
    mini_app.screenshot(f"{scheme}-signed-in.png", SCREENSHOTS)
    page.locator("#section-plans").screenshot(path=str(SCREENSHOTS / f"{scheme}-plans.png"))

    failed = open_app(sign_init_data("7000000005:AAAnotherBotsTokenEntirely_abcdefghijk", user=USER), scheme=scheme)
    failed.page.locator("#failed").wait_for(state="visible")
    assert failed.page.evaluate("getComputedStyle(document.body).backgroundColor") == rgb(theme["secondary_bg_color"])
    failed.screenshot(f"{scheme}-sign-in-failed.png", SCREENSHOTS)
    assert mini_app.errors == [] and failed.errors == []


JARGON = ("initData", "hash", "token", "bot token", "401", "expired")


def test_a_stale_sign_in_says_in_plain_words_to_reopen_the_app_and_closes_it(open_app):
    mini_app = open_app(fresh_init_data(auth_date=time.time() - 3600))

    failed = mini_app.page.locator("#failed")
    failed.wait_for(state="visible")
    said = failed.inner_text()
    assert "This page was open too long" in said and "Close the app and open it again from the bot." in said
    assert not [word for word in JARGON if word in said]
    # Trying again cannot help; closing can.
    assert failed.locator("#retry").is_hidden()
    mini_app.screenshot("miniapp-sign-in-failed.png")
    failed.locator("#close").click()
    assert mini_app.telegram("close") == 1
    assert mini_app.errors == []


def test_a_sign_in_for_another_bot_shows_no_jargon(open_app, caplog):
    other_bot = sign_init_data("7000000005:AAAnotherBotsTokenEntirely_abcdefghijk", user=USER, chat_type="sender")
    mini_app = open_app(other_bot)

    failed = mini_app.page.locator("#failed")
    failed.wait_for(state="visible")
    said = failed.inner_text()
    assert "We could not confirm your Telegram account" in said and "open it again from the bot" in said
    assert not [word for word in JARGON if word in said]
    assert failed.get_attribute("data-reason") == "hash_mismatch"
    assert failed.locator("#close").is_visible() and failed.locator("#retry").is_hidden()
    # The operator reads the technical reason in the log.
    assert "hash_mismatch" in caplog.text and "TELEGRAM_BOT_TOKEN is not the token" in caplog.text
    assert mini_app.errors == []


def test_a_session_that_lapses_after_the_init_data_did_says_to_reopen_the_app(open_app):
    mini_app = open_app(fresh_init_data())
    page = mini_app.page
    page.locator("#content").wait_for(state="visible")
    # Time passes: the session token lapses (as the server answers a token past its exp), and the
    # initData the page signs in with again is by now older than INITDATA_MAX_AGE, so the server refuses it.
    expired = {"error": {"code": "token_expired", "message": "the session token has expired; sign in again"}}
    page.route(f"{mini_app.base}/api/invoice", lambda route: mini_app._answer(route, expired, status=401))
    stale = json.dumps({"init_data": fresh_init_data(auth_date=time.time() - 3600)})
    page.route(f"{mini_app.base}/api/session", lambda route: route.continue_(post_data=stale))

    page.locator('li[data-plan="premium_week"] .buy-stars').click()

    failed = page.locator("#failed")
    failed.wait_for(state="visible")
    said = failed.inner_text()
    assert "Close the app and open it again from the bot." in said
    assert not [word for word in JARGON if word in said]
    assert failed.get_attribute("data-reason") == "expired"
    assert mini_app.telegram("openInvoice") == []
    assert mini_app.errors == []


def test_a_lost_connection_offers_to_try_again(browser, live_server):
    # The first sign-in never reaches the server; the second does.
    attempts = []

    def flaky(route):
        attempts.append(route.request.url)
        route.abort() if len(attempts) == 1 else route.continue_()

    mini_app = MiniApp(browser, live_server, fresh_init_data(), before_open=lambda page: page.route(f"{live_server}/api/session", flaky))
    try:
        failed = mini_app.page.locator("#failed")
        failed.wait_for(state="visible")
        assert "No connection" in failed.inner_text()
        failed.locator("#retry").click()
        mini_app.page.locator("#content").wait_for(state="visible")
        assert mini_app.page.locator("#user-name").inner_text() == "Grace Hopper"
        assert len(attempts) == 2
    finally:
        mini_app.close()
