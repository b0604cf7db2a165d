"""The plan catalogue, read from `PLANS_FILE` (TOML)."""
from __future__ import annotations

import os
import re
import threading
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

STAR_SUBSCRIPTION_PERIOD = 2592000  # Telegram allows only 30-day Star subscriptions.

_FIELDS = {
    "title": str,
    "description": str,
    "entitlement": str,
    "days": int,
    "stars": int,
    "stars_subscription": bool,
    "stripe_price": str,
    "stripe_mode": str,
    "trial_days": int,
    "stripe_promotion_codes": bool,
    "grace_days": (int, float),  # whole days in a real catalogue; a fraction is allowed
}
_KEY = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")


class PlanError(Exception):
    """The plan catalogue cannot be used; the message names the file, the plan and the problem."""


@dataclass(frozen=True)
class Plan:
    """One thing a payer can buy: what it grants, for how long, and its prices."""

    key: str
    title: str
    entitlement: str
    description: str = ""
    days: int | None = None
    stars: int | None = None
    stars_subscription: bool = False
    stripe_price: str | None = None
    stripe_mode: str = "payment"
    trial_days: int | None = None  # a free trial, once per payer and entitlement
    stripe_promotion_codes: bool = False  # Stripe Checkout takes Stripe's own promotion codes
    grace_days: float = 0  # days a failed renewal keeps access

    @property
    def sold_for_stars(self) -> bool:
        """True when the plan can be bought with Telegram Stars."""
        return self.stars is not None

    @property
    def sold_by_card(self) -> bool:
        """True when the plan can be bought through Stripe Checkout."""
        return self.stripe_price is not None

    def to_dict(self) -> dict:
        """The plan as JSON for the API and the CLI."""
        data = asdict(self)
        data["sold_for_stars"] = self.sold_for_stars
        data["sold_by_card"] = self.sold_by_card
        return data


def _check_plan(path: Path, key: str, raw: object) -> Plan:
    where = f"{path}: plan {key!r}"
    if not _KEY.match(key):
        raise PlanError(f"{where}: the plan key must be lowercase letters, digits, '_' or '-'")
    if not isinstance(raw, dict):
        raise PlanError(f"{where}: must be a table")
    for name, value in raw.items():
        expected = _FIELDS.get(name)
        if expected is None:
            raise PlanError(f"{where}: unknown field {name!r} (known: {', '.join(sorted(_FIELDS))})")
        if not isinstance(value, expected) or isinstance(value, bool) and expected is not bool:
            kind = "a number" if isinstance(expected, tuple) else expected.__name__
            raise PlanError(f"{where}: {name!r} must be {kind}")
    for required in ("title", "entitlement"):
        if not raw.get(required):
            raise PlanError(f"{where}: {required!r} is required")
    if not _KEY.match(raw["entitlement"]):
        raise PlanError(f"{where}: 'entitlement' must be lowercase letters, digits, '_' or '-'")
    if "trial_days" in raw and not 1 <= raw["trial_days"] <= 365:
        raise PlanError(f"{where}: 'trial_days' must be a whole number of days from 1 to 365")
    if "stripe_promotion_codes" in raw and "stripe_price" not in raw:
        raise PlanError(f"{where}: 'stripe_promotion_codes' needs 'stripe_price'")
    for positive in ("days", "stars"):
        if positive in raw and raw[positive] <= 0:
            raise PlanError(f"{where}: {positive!r} must be greater than 0")
    if "grace_days" in raw and not 0 <= raw["grace_days"] <= 60:
        raise PlanError(f"{where}: 'grace_days' must be a number of days from 0 to 60")
    if "stars" in raw and raw["stars"] > 100000:
        raise PlanError(f"{where}: 'stars' must be at most 100000")
    if raw.get("stars_subscription"):
        if "stars" not in raw:
            raise PlanError(f"{where}: 'stars_subscription' needs 'stars'")
        if raw["stars"] > 10000:
            raise PlanError(f"{where}: a Star subscription costs at most 10000 Stars")
    mode = raw.get("stripe_mode", "payment")
    if mode not in ("payment", "subscription"):
        raise PlanError(f"{where}: 'stripe_mode' must be 'payment' or 'subscription'")
    if "stripe_mode" in raw and "stripe_price" not in raw:
        raise PlanError(f"{where}: 'stripe_mode' needs 'stripe_price'")
    if "stars" not in raw and "stripe_price" not in raw:
        raise PlanError(f"{where}: set 'stars', 'stripe_price' or both, or the plan cannot be bought")
    return Plan(key=key, **{k: v for k, v in raw.items()})


def load_plans(path: str | Path) -> dict[str, Plan]:
    """Read and validate the catalogue; raise PlanError naming the file, plan and problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError(f"{path}: plan catalogue not found (set PLANS_FILE)") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(data) - {"plans", "entitlements"}
    if unknown:
        raise PlanError(f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))}; plans go under [plans.<key>]")
    plans = data.get("plans", {})
    if not isinstance(plans, dict):
        raise PlanError(f"{path}: 'plans' must be a table of [plans.<key>] tables")
    return {key: _check_plan(path, key, raw) for key, raw in plans.items()}


@dataclass(frozen=True)
class EntitlementSpec:
    """What holding an entitlement gives beyond the grant: chats whose members must hold it, reminders before its end."""

    key: str
    title: str
    chats: tuple[int, ...] = ()
    remind_days: tuple[int, ...] = ()
    unpaid_join: str = "decline"  # what a join request whose requester left the paywall unpaid gets: decline | queue
    emoji_status: str | None = None  # a custom emoji id its holders may wear as their emoji status until the end


_MAX_CHAT_ID = 2**53
UNPAID_JOIN = ("decline", "queue")
_EMOJI_ID = re.compile(r"^[0-9]{1,32}$")


def _check_entitlement(path: Path, key: str, raw: object) -> EntitlementSpec:
    where = f"{path}: entitlement {key!r}"
    if not _KEY.match(key):
        raise PlanError(f"{where}: the entitlement key must be lowercase letters, digits, '_' or '-'")
    if not isinstance(raw, dict):
        raise PlanError(f"{where}: must be a table")
    known = {"title", "chats", "remind_days", "unpaid_join", "emoji_status"}
    unknown = set(raw) - known
    if unknown:
        raise PlanError(f"{where}: unknown field {sorted(unknown)[0]!r} (known: {', '.join(sorted(known))})")
    title = raw.get("title", key)
    if not isinstance(title, str) or not title:
        raise PlanError(f"{where}: 'title' must be a non-empty string")
    chats = raw.get("chats", [])
    if not isinstance(chats, list):
        raise PlanError(f"{where}: 'chats' must be a list of chat ids")
    for chat in chats:
        # Channels and groups have negative ids; a positive one is a user's private chat.
        if isinstance(chat, bool) or not isinstance(chat, int) or not -_MAX_CHAT_ID < chat < 0:
            raise PlanError(f"{where}: chat id {chat!r} must be a negative integer (a channel or group, e.g. -1001234567890)")
    if len(set(chats)) != len(chats):
        raise PlanError(f"{where}: 'chats' lists a chat twice")
    days = raw.get("remind_days", [])
    if not isinstance(days, list):
        raise PlanError(f"{where}: 'remind_days' must be a list of whole days")
    for day in days:
        if isinstance(day, bool) or not isinstance(day, int) or not 1 <= day <= 365:
            raise PlanError(f"{where}: remind_days value {day!r} must be a whole number of days from 1 to 365")
    unpaid_join = raw.get("unpaid_join", "decline")
    if unpaid_join not in UNPAID_JOIN:
        raise PlanError(f"{where}: 'unpaid_join' must be one of {', '.join(UNPAID_JOIN)}")
    emoji = raw.get("emoji_status")
    if emoji is not None and (not isinstance(emoji, str) or not _EMOJI_ID.match(emoji)):
        raise PlanError(f"{where}: 'emoji_status' must be a custom emoji id, a string of digits such as \"5368324170671202286\"")
    return EntitlementSpec(
        key=key, title=title, chats=tuple(chats), remind_days=tuple(sorted(set(days), reverse=True)),
        unpaid_join=unpaid_join, emoji_status=emoji,
    )


def load_entitlements(path: str | Path) -> dict[str, EntitlementSpec]:
    """Read and validate the catalogue's [entitlements.<key>] tables; raise PlanError naming the file, key and problem."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, tomllib.TOMLDecodeError):
        return {}  # load_plans names these problems
    table = data.get("entitlements", {})
    if not isinstance(table, dict):
        raise PlanError(f"{path}: 'entitlements' must be a table of [entitlements.<key>] tables")
    return {key: _check_entitlement(path, key, raw) for key, raw in table.items()}


class Catalogue:
    """The loaded plans, looked up by key, and what each entitlement gives."""

    def __init__(self, plans: dict[str, Plan], entitlements: dict[str, EntitlementSpec] | None = None):
        self.plans = plans
        self.entitlements = entitlements or {}

    @classmethod
    def from_file(cls, path: str | Path) -> "Catalogue":
        """Load and validate a catalogue file."""
        return cls(load_plans(path), load_entitlements(path))

    def entitlement(self, key: str) -> EntitlementSpec | None:
        """What the catalogue says about an entitlement, or None when it says nothing."""
        return self.entitlements.get(key)

    @property
    def has_chats(self) -> bool:
        """True when any entitlement has Telegram chats."""
        return any(spec.chats for spec in self.entitlements.values())

    def get(self, key: str | None) -> Plan | None:
        """The plan with this key, or None."""
        return self.plans.get(key) if key else None

    def __iter__(self):
        return iter(self.plans.values())

    def __len__(self) -> int:
        return len(self.plans)


class PlanFile:
    """The catalogue of one plan file, read again whenever the file changes (an operator's edit).

    Web processes and workers share this one loader, so an edited `PLANS_FILE` reaches both
    without a restart. A broken edit raises PlanError on every read until it is fixed;
    `last_good` is what was read before it.
    """

    def __init__(self, path: str | Path):
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        # (mtime_ns, size) of the file last read, and what it held.
        self._loaded: tuple[tuple[int, int], Catalogue] | None = None

    def current(self) -> Catalogue:
        """The catalogue as the file holds it now; raises PlanError naming the file when it cannot be used."""
        try:
            stat = os.stat(self.path)
        except OSError:
            return Catalogue.from_file(self.path)  # raises PlanError naming the file
        key = (stat.st_mtime_ns, stat.st_size)
        loaded = self._loaded
        if loaded is not None and loaded[0] == key:
            return loaded[1]
        with self._lock:
            catalogue = Catalogue.from_file(self.path)
            self._loaded = (key, catalogue)
        return catalogue

    @property
    def last_good(self) -> Catalogue | None:
        """The catalogue last read successfully, or None."""
        loaded = self._loaded
        return loaded[1] if loaded else None
