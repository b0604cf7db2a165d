"""The bot's commands: /start, /buy, /status, /cancel, /resume and /paysupport (Telegram requires it of bots that sell)."""
from __future__ import annotations

import re
import telebot
from telebot import types

from app import entitlements, users
from app.clock import iso
from app.config import Settings
from app.models import Grant, User
from app.plans import Catalogue, Plan
from app.telegram import SOURCE, payments, subscriptions

COMMANDS = ("start", "buy", "status", "cancel", "resume", "paysupport", "trial", "redeem", "gift")

_COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@[A-Za-z0-9_]+)?(?:\s+(.*))?$", re.DOTALL)


def parse(text: str | None) -> tuple[str, str] | None:
    """The command and its argument in a message such as `/buy@our_bot premium_week`, or None if it is not ours."""
    match = _COMMAND.match((text or "").strip())
    if match is None or match[1].lower() not in COMMANDS:
        return None
    return match[1].lower(), (match[2] or "").strip()


def _price(plan: Plan) -> str:
    return f"{plan.stars} ⭐" + (" every 30 days" if plan.stars_subscription else "")


def start(bot: telebot.TeleBot, settings: Settings, catalogue: Catalogue, message: types.Message, arg: str) -> None:
    """Welcome the user, with a button that opens the Mini App; a deep link `promo_CODE` or `gift_CODE` redeems it."""
    if arg.lower().startswith("promo_"):
        return redeem(bot, settings, catalogue, message, arg[len("promo_"):])
    if arg.lower().startswith("gift_"):
        return _open_gift(bot, catalogue, message, arg[len("gift_"):])
    name = message.from_user.first_name or "there"
    lines = [f"Hello, {name}!", "", "/buy — see the plans and pay with Telegram Stars", "/status — what you have now",
             "/cancel · /resume — stop or restart a subscription's renewals", "/paysupport — help with a payment"]
    app_url = f"{settings.public_url}/app"
    markup = None
    # Telegram accepts Mini App buttons only for https pages.
    if app_url.startswith("https://"):
        markup = types.InlineKeyboardMarkup()
        markup.add(types.InlineKeyboardButton("Open the app", web_app=types.WebAppInfo(app_url)))
    else:
        lines += ["", f"The app: {app_url}"]
    bot.send_message(message.chat.id, "\n".join(lines), reply_markup=markup)


def buy(bot: telebot.TeleBot, settings: Settings, catalogue: Catalogue, message: types.Message, arg: str) -> None:
    """Send the plans sold for Stars as invoices (a subscription plan as a subscription link)."""
    chat_id, user_id = message.chat.id, message.from_user.id
    plans = [plan for plan in catalogue if plan.sold_for_stars]
    if arg:
        plans = [plan for plan in plans if plan.key == arg.lower()]
        if not plans:
            keys = ", ".join(p.key for p in catalogue if p.sold_for_stars) or "none"
            bot.send_message(chat_id, f"There is no plan called {arg!r}. Plans: {keys}.")
            return
    if not plans:
        bot.send_message(chat_id, "Nothing is on sale for Telegram Stars right now.")
        return
    for plan in plans:
        if plan.stars_subscription:
            # sendInvoice cannot sell a subscription; only an invoice link can.
            link = payments.create_invoice_link(bot, plan, user_id)
            markup = types.InlineKeyboardMarkup()
            markup.add(types.InlineKeyboardButton(f"Subscribe for {_price(plan)}", url=link))
            text = f"{plan.title}\n{plan.description or ''}".strip()
            bot.send_message(chat_id, text, reply_markup=markup)
        else:
            payments.send_invoice(bot, chat_id, plan, user_id)


def status(bot: telebot.TeleBot, settings: Settings, catalogue: Catalogue, message: types.Message, arg: str) -> None:
    """Tell the user what they hold now."""
    user = users.find_user(message.from_user.id)
    held = entitlements.summary(user) if user else []
    if not held:
        text = "You have nothing active right now. /buy to see the plans."
    else:
        lines = ["You have:"]
        for row in held:
            end = entitlements.current_end(user, row["entitlement"])
            lines.append(f"• {row['entitlement']} {payments.until_text(end)}")
        text = "\n".join(lines)
    bot.send_message(message.chat.id, text)


def _payments_of(user: User, limit: int = 5) -> list[Grant]:
    query = Grant.select().where((Grant.user == user) & (Grant.source == SOURCE))
    return list(query.order_by(Grant.created_at.desc(), Grant.id.desc()).limit(limit))


def paysupport(bot: telebot.TeleBot, settings: Settings, catalogue: Catalogue, message: types.Message, arg: str) -> None:
    """Payment support: the user's recent payments with their references, and how refunds work."""
    user = users.find_user(message.from_user.id)
    lines = ["Payment support", ""]
    recent = _payments_of(user) if user else []
    if recent:
        lines.append("Your recent payments:")
        for grant in recent:
            plan = catalogue.get(grant.plan)
            state = f"refunded {iso(grant.revoked_at)[:10]}" if grant.revoked_at else payments.until_text(grant.ends_at)
            lines.append(f"• {plan.title if plan else grant.plan}, {iso(grant.created_at)[:10]}, {state}")
            lines.append(f"  reference: {grant.reference}")
        lines.append("")
    else:
        lines += ["We have no Telegram Stars payment from you on record.", ""]
    lines.append(
        "If something went wrong, write to the operator of this bot and quote the reference. "
        "Refunds go back to your Telegram Stars balance, and end what the payment gave you."
    )
    bot.send_message(message.chat.id, "\n".join(lines))


def _user_of(message: types.Message) -> User:
    return users.ensure_user(message.from_user.id, **users.profile_from_telegram(message.from_user.to_dict()))


def _until(result) -> str:
    return payments.until_text(result.grant.ends_at)


def trial(bot: telebot.TeleBot, settings: Settings, catalogue: Catalogue, message: types.Message, arg: str) -> None:
    """Start a plan's free trial (`/trial` or `/trial PLAN`), once per entitlement."""
    from app.ways import trials
    from app.ways.refusals import Refused

    try:
        plan = trials.choose_plan(catalogue, arg or None)
        result = trials.start(_user_of(message), plan, via="bot")
    except Refused as refusal:
        bot.send_message(message.chat.id, refusal.message)
        return
    bot.send_message(message.chat.id, f"Your free trial of {plan.title} has started: {plan.entitlement} is yours {_until(result)}.")


def redeem(bot: telebot.TeleBot, settings: Settings, catalogue: Catalogue, message: types.Message, arg: str) -> None:
    """Redeem a promo code (`/redeem CODE`, or the deep link `?start=promo_CODE`)."""
    from app.ways import promo
    from app.ways.guesses import limit_for
    from app.ways.refusals import Refused

    if not arg:
        bot.send_message(message.chat.id, "Send the code after the command, like this: /redeem SPRING24")
        return
    try:
        row, result = promo.redeem(_user_of(message), arg, via="bot", limit=limit_for(settings.redis_url, settings.broker_namespace))
    except Refused as refusal:
        bot.send_message(message.chat.id, refusal.message)
        return
    bot.send_message(message.chat.id, f"Code {row.code} redeemed: {row.entitlement} is yours {_until(result)}.")


def gift(bot: telebot.TeleBot, settings: Settings, catalogue: Catalogue, message: types.Message, arg: str) -> None:
    """Buy a plan for someone else (`/gift PLAN`): a Stars invoice marked as a gift."""
    from app.ways import gifts
    from app.ways.refusals import Refused

    try:
        plan = gifts.giftable(catalogue, arg or None)
    except Refused as refusal:
        bot.send_message(message.chat.id, refusal.message)
        return
    if not plan.sold_for_stars:
        bot.send_message(message.chat.id, f"{plan.title} is sold by card only: give it from the app.")
        return
    payments.send_invoice(bot, message.chat.id, plan, _user_of(message).telegram_id, gift=True)


def _open_gift(bot: telebot.TeleBot, catalogue: Catalogue, message: types.Message, code: str) -> None:
    """Redeem a gift link for whoever opened it, and tell its buyer."""
    from app.ways import gifts
    from app.ways.refusals import Refused

    user = _user_of(message)
    try:
        gift, result = gifts.redeem(catalogue, user, code)
    except Refused as refusal:
        bot.send_message(message.chat.id, refusal.message)
        return
    plan = catalogue.get(gift.plan)
    bot.send_message(message.chat.id, f"A gift for you: {plan.title}. {plan.entitlement} is yours {_until(result)}.")
    try:
        bot.send_message(gift.buyer.telegram_id, f"Your gift of {plan.title} was redeemed by {user.display_name}.")
    except Exception:  # noqa: BLE001 - the buyer may have blocked the bot; the gift stands
        pass


def cancel(bot: telebot.TeleBot, settings: Settings, catalogue: Catalogue, message: types.Message, arg: str) -> None:
    """Cancel the payer's subscription at its period end (a button per subscription when there are several)."""
    subscriptions.command(bot, settings, catalogue, message, "cancel")


def resume(bot: telebot.TeleBot, settings: Settings, catalogue: Catalogue, message: types.Message, arg: str) -> None:
    """Let the payer's canceled subscription renew again (a button per subscription when there are several)."""
    subscriptions.command(bot, settings, catalogue, message, "resume")


_ANSWERS = {
    "start": start, "buy": buy, "status": status, "cancel": cancel, "resume": resume, "paysupport": paysupport,
    "trial": trial, "redeem": redeem, "gift": gift,
}


def answer(bot: telebot.TeleBot, settings: Settings, catalogue: Catalogue, message: types.Message) -> str | None:
    """Answer a command message; returns the command's name, or None when the message is not a command of ours."""
    parsed = parse(message.text)
    if parsed is None:
        return None
    name, arg = parsed
    users.ensure_user(message.from_user.id, **users.profile_from_telegram(message.from_user.to_dict()))
    _ANSWERS[name](bot, settings, catalogue, message, arg)
    return name
