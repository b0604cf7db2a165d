"""A small Bot API server for tests, benchmarks and `entitle sandbox`: Telegram replaced at the wire, nothing of ours patched.

It answers `/bot<token>/<method>` like https://api.telegram.org does: `{"ok": true, "result": …}`
with results in the documented shapes, or `{"ok": false, "error_code", "description"}` with the
same HTTP status. Every request is recorded as a `Call` whose params are the strings that came
over the wire (query string, form, multipart or JSON body; JSON values that are not strings are
re-encoded as JSON text, so `Call.json(name)` reads `prices` the same way whichever client sent it).

It also keeps the bot's Star ledger: tests say a payment, refund or other transaction happened
(`star_payment`, `star_refund`, `add_star_transaction`; a successful `refundStarPayment` of a
payment in the ledger adds its refund), and `getStarTransactions` answers with them as
StarTransactions in chronological order, as the Bot API documents it (or newest first, as
Telegram's servers have also been seen to answer, with `star_ledger_newest_first = True`), paged
by `offset` and `limit` (1-100, default 100).
"""
from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from simulate.serving import Served


__all__ = ["Call", "FakeTelegramAPI"]

STARS_SUBSCRIPTION_PERIOD = 2592000  # the only period the Bot API accepts (30 days)

_METHODS = (
    "getMe", "sendMessage", "sendInvoice", "createInvoiceLink", "answerPreCheckoutQuery",
    "refundStarPayment", "editUserStarSubscription", "setWebhook", "getWebhookInfo",
    "deleteWebhook", "answerCallbackQuery",
    "createChatInviteLink", "approveChatJoinRequest", "declineChatJoinRequest", "banChatMember", "unbanChatMember",
    "getChatMember", "getStarTransactions", "answerChatJoinRequestQuery", "sendChatJoinRequestWebApp", "setUserEmojiStatus",
)
_CANONICAL = {name.lower(): name for name in _METHODS}
# What Telegram's published limits count: messages, and (as bulk work) changes of chat membership.
_LIMITED = frozenset({
    "sendMessage", "createChatInviteLink", "approveChatJoinRequest", "declineChatJoinRequest", "banChatMember", "unbanChatMember",
})

_REQUIRED = {
    "sendMessage": ("chat_id", "text"),
    "sendInvoice": ("chat_id", "title", "description", "payload", "currency", "prices"),
    "createInvoiceLink": ("title", "description", "payload", "currency", "prices"),
    "answerPreCheckoutQuery": ("pre_checkout_query_id", "ok"),
    "refundStarPayment": ("user_id", "telegram_payment_charge_id"),
    "editUserStarSubscription": ("user_id", "telegram_payment_charge_id", "is_canceled"),
    "answerCallbackQuery": ("callback_query_id",),
    "createChatInviteLink": ("chat_id",),
    "approveChatJoinRequest": ("chat_id", "user_id"),
    "declineChatJoinRequest": ("chat_id", "user_id"),
    "banChatMember": ("chat_id", "user_id"),
    "unbanChatMember": ("chat_id", "user_id"),
    "getChatMember": ("chat_id", "user_id"),
    "answerChatJoinRequestQuery": ("chat_join_request_query_id", "result"),
    "sendChatJoinRequestWebApp": ("chat_join_request_query_id", "web_app_url"),
    "setUserEmojiStatus": ("user_id",),
}

# What a chat member's status says about membership (https://core.telegram.org/bots/api#chatmember).
_ADMIN_RIGHTS = (
    "can_be_edited", "is_anonymous", "can_manage_chat", "can_delete_messages", "can_manage_video_chats",
    "can_restrict_members", "can_promote_members", "can_change_info", "can_invite_users", "can_post_stories",
    "can_edit_stories", "can_delete_stories",
)


def _truthy(value: str | None) -> bool:
    return str(value).strip().lower() in ("true", "1")


@dataclass(frozen=True)
class Call:
    """One request the fake received: the canonical method name and its parameters as sent."""

    method: str
    params: dict[str, str]
    token: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)  # when it arrived, for tests of waits between calls

    def json(self, name: str) -> Any:
        """The parameter `name` decoded from JSON (e.g. `prices`, `reply_markup`, `allowed_updates`)."""
        return json.loads(self.params[name])

    def flag(self, name: str) -> bool:
        """The boolean parameter `name`, whichever spelling the client used (`True`, `true`, `1`)."""
        return _truthy(self.params.get(name))


class _Failure:
    def __init__(self, error_code: int, description: str, times: int | None, retry_after: int | None):
        self.error_code = error_code
        self.description = description
        self.remaining = times
        self.retry_after = retry_after


def _ledger_position(item: tuple[int, dict[str, Any]]) -> tuple[int, int]:
    index, transaction = item
    date = transaction.get("date") if isinstance(transaction, dict) else None
    return (date if isinstance(date, int) and not isinstance(date, bool) else 0, index)


class _APIError(Exception):
    def __init__(self, error_code: int, description: str, parameters: dict | None = None):
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters = parameters


class FakeTelegramAPI(Served):
    """A threaded HTTP server on 127.0.0.1 that speaks the Bot API methods entitle uses."""

    def __init__(self, token: str | None = None, *, username: str = "entitle_test_bot", known_charges_only: bool = False) -> None:
        """`token`: the only token accepted (any when None); `known_charges_only`: refund only charges told by `add_charge`."""
        self.expected_token = token
        self.username = username
        self.known_charges_only = known_charges_only
        self._charges: dict[str, dict[str, Any]] = {}
        self.token_seen: str | None = None
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._failures: dict[str, _Failure] = {}
        self._responses: dict[str, Any] = {}
        self._answered_queries: set[str] = set()
        self._webhook: dict[str, Any] = {}
        self._members: dict[tuple[int, int], str] = {}
        self._message_ids = itertools.count(1)
        self._star_transactions: list[dict[str, Any]] = []  # the bot's Star ledger, oldest first
        self.star_ledger_newest_first = False  # the order getStarTransactions pages in
        self._limits: tuple[int, int] | None = None  # (per second, per chat per second) once `enforce_limits` is called
        self.refused_for_rate = 0
        self._subscription_edits: list[dict[str, Any]] = []  # editUserStarSubscription calls it accepted, in order
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    thread_name = "fake-telegram-api"

    def _make_server(self) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.api = self  # type: ignore[attr-defined]
        return server

    # -- what tests read and arrange -----------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """Every request received so far, in order (a copy)."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        """The calls to one method (case-insensitive), in order."""
        wanted = method.lower()
        return [call for call in self.calls if call.method.lower() == wanted]

    @property
    def webhook(self) -> dict[str, Any]:
        """The webhook as last set by setWebhook (url, secret_token, allowed_updates, …); {} when none."""
        with self._lock:
            return dict(self._webhook)

    def fail(
        self,
        method: str,
        error_code: int = 400,
        description: str = "Bad Request: CHARGE_ALREADY_REFUNDED",
        times: int | None = None,
        *,
        retry_after: int | None = None,
    ) -> None:
        """Make `method` answer with an error: the next `times` calls, or every call until reset."""
        with self._lock:
            self._failures[method.lower()] = _Failure(error_code, description, times, retry_after)

    def set_member(self, chat_id: int, user_id: int, status: str) -> None:
        """Set a user's status in a chat: `creator`, `administrator`, `member`, `restricted`, `left` or `kicked`."""
        with self._lock:
            self._members[(int(chat_id), int(user_id))] = status

    def member_status(self, chat_id: int, user_id: int) -> str:
        """A user's status in a chat as the fake holds it (`left` when never set)."""
        with self._lock:
            return self._members.get((int(chat_id), int(user_id)), "left")

    def respond(self, method: str, result: Any) -> None:
        """Make `method` answer `{"ok": true, "result": result}` instead of the default result."""
        with self._lock:
            self._responses[method.lower()] = result

    def add_charge(self, user_id: int, charge_id: str, amount: int) -> None:
        """Remember a Stars payment, so that `refundStarPayment` refunds it once (with `known_charges_only`)."""
        with self._lock:
            self._charges.setdefault(charge_id, {"user_id": int(user_id), "amount": int(amount), "refunded": False})

    def charge(self, charge_id: str) -> dict[str, Any] | None:
        """What is known of a Stars payment: user_id, amount, refunded; None when never told."""
        with self._lock:
            found = self._charges.get(charge_id)
            return dict(found) if found is not None else None

    def enforce_limits(self, per_second: int = 30, per_chat_per_second: int = 1) -> None:
        """Answer 429 with `retry_after`, as Telegram does, past its published limits (Bots FAQ): about 30 messages a
        second overall (membership changes counted too) and one message a second to one chat, over any second."""
        with self._lock:
            self._limits = (per_second, per_chat_per_second)
            self._sent_at: deque[float] = deque()
            self._sent_to: dict[str, deque[float]] = {}
            self.refused_for_rate = 0

    def _enforce_limits(self, method: str, params: dict[str, str]) -> None:
        if self._limits is None or method not in _LIMITED:
            return
        per_second, per_chat = self._limits
        now = time.monotonic()
        while self._sent_at and self._sent_at[0] <= now - 1:
            self._sent_at.popleft()
        chat = params.get("chat_id") if method == "sendMessage" else None
        to_chat = self._sent_to.setdefault(chat, deque()) if chat is not None else None
        while to_chat and to_chat[0] <= now - 1:
            to_chat.popleft()
        if len(self._sent_at) >= per_second or (to_chat is not None and len(to_chat) >= per_chat):
            self.refused_for_rate += 1
            raise _APIError(429, "Too Many Requests: retry after 1", {"retry_after": 1})
        self._sent_at.append(now)
        if to_chat is not None:
            to_chat.append(now)

    def forget_calls(self) -> None:
        """Drop the recorded calls (a long-running server keeps what it was told, not every request)."""
        with self._lock:
            self._calls.clear()

    def reset(self) -> None:
        """Forget calls, failures, custom results, charges and webhook state; keep serving."""
        with self._lock:
            self._calls.clear()
            self._charges.clear()
            self._failures.clear()
            self._responses.clear()
            self._webhook.clear()
            self._members.clear()
            self._star_transactions.clear()
            self._answered_queries.clear()
            self.star_ledger_newest_first = False
            self._subscription_edits.clear()
            self.token_seen = None

    # -- the Star ledger -----------------------------------------------------------------

    @property
    def star_transactions(self) -> list[dict[str, Any]]:
        """The bot's Star transactions, oldest first (a copy)."""
        with self._lock:
            return [json.loads(json.dumps(t)) for t in self._star_transactions]

    def add_star_transaction(self, transaction: dict[str, Any]) -> dict[str, Any]:
        """Put a StarTransaction (any partner: a gift, ads, a withdrawal…) in the ledger; returns it."""
        transaction = {"date": int(time.time()), **transaction}
        transaction.setdefault("id", f"stx_{secrets.token_hex(12)}")
        with self._lock:
            self._star_transactions.append(transaction)
        return dict(transaction)

    def star_payment(
        self,
        user_id: int,
        amount: int,
        invoice_payload: str,
        *,
        charge_id: str | None = None,
        date: int | None = None,
        subscription_period: int | None = None,
        first_name: str = "Test",
    ) -> dict[str, Any]:
        """A user paid an invoice: an incoming transaction whose id is the payment's `telegram_payment_charge_id`."""
        source: dict[str, Any] = {
            "type": "user",
            "transaction_type": "invoice_payment",
            "user": {"id": int(user_id), "is_bot": False, "first_name": first_name},
            "invoice_payload": invoice_payload,
        }
        if subscription_period:
            source["subscription_period"] = int(subscription_period)
        transaction = {"id": charge_id or f"stxcharge_{secrets.token_hex(12)}", "amount": int(amount), "source": source}
        if date is not None:
            transaction["date"] = int(date)
        return self.add_star_transaction(transaction)

    def star_refund(self, charge_id: str, *, date: int | None = None) -> dict[str, Any]:
        """A payment in the ledger was refunded (or charged back): an outgoing transaction with the payment's id."""
        with self._lock:
            payment = next((t for t in self._star_transactions if t.get("id") == charge_id and "source" in t), None)
        if payment is None:
            raise KeyError(f"no payment {charge_id} in the Star ledger")
        receiver = {k: v for k, v in payment["source"].items() if k in ("type", "transaction_type", "user", "invoice_payload")}
        transaction: dict[str, Any] = {"id": charge_id, "amount": payment["amount"], "receiver": receiver}
        if date is not None:
            transaction["date"] = int(date)
        return self.add_star_transaction(transaction)

    def _result_getStarTransactions(self, token: str, params: dict[str, str]) -> dict[str, Any]:
        try:
            offset, limit = int(params.get("offset") or 0), int(params.get("limit") or 100)
        except ValueError:
            raise _APIError(400, "Bad Request: offset and limit must be integers") from None
        if offset < 0 or not 1 <= limit <= 100:
            raise _APIError(400, "Bad Request: limit must be between 1 and 100")
        with self._lock:
            # By date, then as added (a malformed date a test put in the ledger sorts first).
            ordered = sorted(enumerate(self._star_transactions), key=_ledger_position, reverse=self.star_ledger_newest_first)
            page = [json.loads(json.dumps(t)) for _, t in ordered[offset:offset + limit]]
        return {"transactions": page}

    # -- the API -------------------------------------------------------------------------

    def answer(self, target: str, content_type: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Answer one HTTP request to `target` (path and query): the status and the JSON body, as the Bot API would."""
        split = urlsplit(target)
        parts = split.path.split("/")
        # Only /bot<token>/<method>: ['', 'bot<token>', '<method>']
        if len(parts) != 3 or not parts[1].startswith("bot") or len(parts[1]) == 3 or not parts[2]:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        token, method = unquote(parts[1][3:]), parts[2]
        try:
            params = dict(parse_qsl(split.query, keep_blank_values=True))
            files = _parse_body(content_type, body, params)
            result = self._handle(token, method, params, files)
        except _APIError as error:
            answer: dict[str, Any] = {"ok": False, "error_code": error.error_code, "description": error.description}
            if error.parameters:
                answer["parameters"] = error.parameters
            return error.error_code, answer
        except Exception as error:  # a bug in the fake: say so rather than drop the connection
            description = f"Internal Server Error: fake Bot API failed: {type(error).__name__}: {error}"
            return 500, {"ok": False, "error_code": 500, "description": description}
        return 200, {"ok": True, "result": result}

    def _handle(self, token: str, method_in_path: str, params: dict[str, str], files: dict[str, bytes]) -> Any:
        method = _CANONICAL.get(method_in_path.lower(), method_in_path)
        with self._lock:
            self.token_seen = token
            if self.expected_token is not None and token != self.expected_token:
                raise _APIError(401, "Unauthorized")
            self._calls.append(Call(method, params, token, files))
            self._enforce_limits(method, params)
            failure = self._failures.get(method.lower())
            if failure is not None:
                if failure.remaining is not None:
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        del self._failures[method.lower()]
                extra = {"retry_after": failure.retry_after} if failure.retry_after is not None else None
                raise _APIError(failure.error_code, failure.description, extra)
            if method.lower() in self._responses:
                return self._responses[method.lower()]
        if method not in _METHODS:
            raise _APIError(404, "Not Found: method not found")
        _validate(method, params)
        return getattr(self, f"_result_{method}")(token, params)

    def _bot_user(self, token: str) -> dict[str, Any]:
        bot_id = token.partition(":")[0]
        return {
            "id": int(bot_id) if bot_id.isdigit() else 1,
            "is_bot": True,
            "first_name": "Entitle Test Bot",
            "username": self.username,
        }

    def _message(self, token: str, params: dict[str, str], **content: Any) -> dict[str, Any]:
        message = {
            "message_id": next(self._message_ids),
            "from": self._bot_user(token),
            "chat": _chat(params["chat_id"]),
            "date": int(time.time()),
            **content,
        }
        markup = _json_or_none(params.get("reply_markup"))
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            message["reply_markup"] = {"inline_keyboard": markup["inline_keyboard"]}
        return message

    def _result_getMe(self, token: str, params: dict[str, str]) -> dict[str, Any]:
        return {
            **self._bot_user(token),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _result_sendMessage(self, token: str, params: dict[str, str]) -> dict[str, Any]:
        # 1-4096 characters, which Telegram counts in UTF-16 code units.
        length = len(params["text"].encode("utf-16-le", "surrogatepass")) // 2
        if not params["text"].strip():
            raise _APIError(400, "Bad Request: message text is empty")
        if length > 4096:
            raise _APIError(400, "Bad Request: message is too long")
        return self._message(token, params, text=params["text"])

    def _result_sendInvoice(self, token: str, params: dict[str, str]) -> dict[str, Any]:
        invoice = {
            "title": params["title"],
            "description": params["description"],
            "start_parameter": params.get("start_parameter", ""),
            "currency": params["currency"],
            "total_amount": sum(int(price["amount"]) for price in json.loads(params["prices"])),
        }
        return self._message(token, params, invoice=invoice)

    def _result_createInvoiceLink(self, token: str, params: dict[str, str]) -> str:
        return f"https://t.me/${secrets.token_urlsafe(16)}"

    def _result_answerPreCheckoutQuery(self, token: str, params: dict[str, str]) -> bool:
        return True

    def _result_refundStarPayment(self, token: str, params: dict[str, str]) -> bool:
        charge_id = params["telegram_payment_charge_id"]
        with self._lock:
            charge = self._charges.get(charge_id)
            if charge is None:
                if self.known_charges_only:
                    raise _APIError(400, "Bad Request: CHARGE_NOT_FOUND")
            else:
                if str(charge["user_id"]) != params["user_id"]:
                    raise _APIError(400, "Bad Request: CHARGE_NOT_FOUND")
                if charge["refunded"]:
                    raise _APIError(400, "Bad Request: CHARGE_ALREADY_REFUNDED")
                charge["refunded"] = True
            paid = any(t.get("id") == charge_id and "source" in t for t in self._star_transactions)
            refunded = any(t.get("id") == charge_id and "receiver" in t for t in self._star_transactions)
        if paid and not refunded:
            self.star_refund(charge_id)
        return True

    @property
    def subscription_edits(self) -> list[dict[str, Any]]:
        """The Star subscriptions canceled or re-allowed with editUserStarSubscription: user, charge and `is_canceled`, in order."""
        with self._lock:
            return [dict(edit) for edit in self._subscription_edits]

    def _result_editUserStarSubscription(self, token: str, params: dict[str, str]) -> bool:
        charge_id = params["telegram_payment_charge_id"]
        with self._lock:
            charge = self._charges.get(charge_id)
            if (charge is None and self.known_charges_only) or (charge is not None and str(charge["user_id"]) != params["user_id"]):
                raise _APIError(400, "Bad Request: CHARGE_NOT_FOUND")
            self._subscription_edits.append(
                {"user_id": int(params["user_id"]), "telegram_payment_charge_id": charge_id, "is_canceled": _truthy(params["is_canceled"])}
            )
        return True

    def _result_answerCallbackQuery(self, token: str, params: dict[str, str]) -> bool:
        return True

    def _result_createChatInviteLink(self, token: str, params: dict[str, str]) -> dict[str, Any]:
        link = {
            "invite_link": f"https://t.me/+{secrets.token_urlsafe(12)}",
            "creator": self._bot_user(token),
            "creates_join_request": _truthy(params.get("creates_join_request")),
            "is_primary": False,
            "is_revoked": False,
        }
        if params.get("name"):
            if len(params["name"]) > 32:
                raise _APIError(400, "Bad Request: invite link name is too long")
            link["name"] = params["name"]
        return link

    def _result_approveChatJoinRequest(self, token: str, params: dict[str, str]) -> bool:
        self.set_member(int(params["chat_id"]), int(params["user_id"]), "member")
        return True

    def _result_declineChatJoinRequest(self, token: str, params: dict[str, str]) -> bool:
        return True

    def _result_answerChatJoinRequestQuery(self, token: str, params: dict[str, str]) -> bool:
        if params["result"] not in ("approve", "decline", "queue"):
            raise _APIError(400, "Bad Request: result must be one of approve, decline or queue")
        with self._lock:
            # A query is answered once; Telegram refuses the query id after that.
            if params["chat_join_request_query_id"] in self._answered_queries:
                raise _APIError(400, "Bad Request: QUERY_ID_INVALID")
            self._answered_queries.add(params["chat_join_request_query_id"])
        return True

    def _result_sendChatJoinRequestWebApp(self, token: str, params: dict[str, str]) -> bool:
        if params["chat_join_request_query_id"] in self._answered_queries:
            raise _APIError(400, "Bad Request: QUERY_ID_INVALID")
        if not params["web_app_url"].startswith(("https://", "http://")):
            raise _APIError(400, "Bad Request: web app URL is invalid")
        return True

    def _result_setUserEmojiStatus(self, token: str, params: dict[str, str]) -> bool:
        return True

    def _result_banChatMember(self, token: str, params: dict[str, str]) -> bool:
        key = (int(params["chat_id"]), int(params["user_id"]))
        if self.member_status(*key) in ("creator", "administrator"):
            raise _APIError(400, "Bad Request: user is an administrator of the chat")
        self.set_member(*key, "kicked")
        return True

    def _result_unbanChatMember(self, token: str, params: dict[str, str]) -> bool:
        key = (int(params["chat_id"]), int(params["user_id"]))
        status = self.member_status(*key)
        if status == "kicked" or not _truthy(params.get("only_if_banned")):
            if status in ("creator", "administrator"):
                raise _APIError(400, "Bad Request: can't remove chat owner")
            self.set_member(*key, "left")
        return True

    def _result_getChatMember(self, token: str, params: dict[str, str]) -> dict[str, Any]:
        user_id = int(params["user_id"])
        status = self.member_status(int(params["chat_id"]), user_id)
        member: dict[str, Any] = {"user": {"id": user_id, "is_bot": False, "first_name": "Test"}, "status": status}
        if status == "creator":
            member["is_anonymous"] = False
        elif status == "administrator":
            member.update({right: right == "can_invite_users" or right == "can_restrict_members" for right in _ADMIN_RIGHTS})
        elif status == "kicked":
            member["until_date"] = 0
        return member

    def _result_setWebhook(self, token: str, params: dict[str, str]) -> bool:
        webhook: dict[str, Any] = {}
        if params.get("url"):
            webhook = {"url": params["url"]}
            if "secret_token" in params:
                webhook["secret_token"] = params["secret_token"]
            if "allowed_updates" in params:
                webhook["allowed_updates"] = json.loads(params["allowed_updates"])
            if "max_connections" in params:
                webhook["max_connections"] = int(params["max_connections"])
        with self._lock:
            self._webhook = webhook
        return True

    def _result_deleteWebhook(self, token: str, params: dict[str, str]) -> bool:
        with self._lock:
            self._webhook = {}
        return True

    def _result_getWebhookInfo(self, token: str, params: dict[str, str]) -> dict[str, Any]:
        webhook = self.webhook
        info: dict[str, Any] = {
            "url": webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": 0,
        }
        if webhook:
            info["max_connections"] = webhook.get("max_connections", 40)
            if "allowed_updates" in webhook:
                info["allowed_updates"] = webhook["allowed_updates"]
        return info


def _json_or_none(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def _chat(chat_id: str) -> dict[str, Any]:
    if chat_id.startswith("@"):
        return {"id": -1001000000001, "type": "channel", "username": chat_id[1:], "title": chat_id[1:]}
    numeric = int(chat_id)
    if numeric > 0:
        return {"id": numeric, "type": "private", "first_name": "Test"}
    return {"id": numeric, "type": "supergroup", "title": "Test group"}


def _validate(method: str, params: dict[str, str]) -> None:
    """Reject what the real Bot API rejects for the parameters entitle sends."""
    for name in _REQUIRED.get(method, ()):
        if params.get(name, "") == "":
            raise _APIError(400, f"Bad Request: parameter {name} is required")
    if "chat_id" in params:
        try:
            _chat(params["chat_id"])
        except ValueError:
            raise _APIError(400, "Bad Request: chat not found") from None
    if method in ("sendInvoice", "createInvoiceLink"):
        prices = _json_or_none(params["prices"])
        if not isinstance(prices, list) or not all(isinstance(p, dict) and "amount" in p for p in prices):
            raise _APIError(400, "Bad Request: can't parse prices JSON object")
        if params["currency"] == "XTR":
            if len(prices) != 1:
                raise _APIError(400, "Bad Request: prices must contain exactly one item for payments in Telegram Stars")
            if params.get("provider_token"):
                raise _APIError(400, "Bad Request: provider_token must be empty for payments in Telegram Stars")
        if "subscription_period" in params:
            if params["currency"] != "XTR":
                raise _APIError(400, "Bad Request: subscriptions can be paid only in Telegram Stars")
            if params["subscription_period"] != str(STARS_SUBSCRIPTION_PERIOD):
                raise _APIError(400, "Bad Request: SUBSCRIPTION_PERIOD_INVALID")
    if method == "answerPreCheckoutQuery" and not _truthy(params["ok"]) and not params.get("error_message"):
        raise _APIError(400, "Bad Request: error_message is required when ok is false")


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeTelegramBotAPI/1.0"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass

    def _serve(self) -> None:
        api: FakeTelegramAPI = self.server.api  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(*api.answer(self.path, self.headers.get("Content-Type", ""), body))

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _parse_body(content_type: str, body: bytes, params: dict[str, str]) -> dict[str, bytes]:
    """Merge the body's parameters into `params`; return uploaded files by field name."""
    files: dict[str, bytes] = {}
    kind = content_type.split(";")[0].strip().lower()
    if not body:
        return files
    if kind == "application/json":
        try:
            decoded = json.loads(body)
        except ValueError:
            raise _APIError(400, "Bad Request: can't parse JSON encoded request") from None
        if not isinstance(decoded, dict):
            raise _APIError(400, "Bad Request: can't parse JSON encoded request")
        for name, value in decoded.items():
            params[name] = value if isinstance(value, str) else json.dumps(value)
    elif kind == "application/x-www-form-urlencoded":
        params.update(parse_qsl(body.decode(), keep_blank_values=True))
    elif kind == "multipart/form-data":
        message = BytesParser(policy=policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
        )
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not name:
                continue
            payload = part.get_payload(decode=True) or b""
            if part.get_filename() is not None:
                files[name] = payload
            else:
                params[name] = payload.decode()
    return files
