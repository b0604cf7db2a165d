"""`entitle initdata debug|sign`: explain why an initData passes or fails, and make valid ones."""
from __future__ import annotations

import json
from enum import Enum
from urllib.parse import quote, urlencode
from typing import Optional

import typer
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from app.telegram.initdata import LIKELY_CAUSES, REASONS, Explanation, InitDataError, explain, sign_init_data
from cli import context
from cli.output import console, fail, print_json

app = typer.Typer(help="Debug and sign Telegram Mini App initData.", no_args_is_help=True)

USAGE = 2
# The Bot API version a locally opened Mini App claims to run in (what telegram-web-app.js reads as `version`).
LAUNCH_VERSION = "8.0"
MARKS = {True: Text("✔ pass", style="green"), False: Text("✘ fail", style="bold red"), None: Text("– skip", style="dim")}


class Environment(str, Enum):
    production = "production"
    test = "test"


def register(root: typer.Typer, refund_app: typer.Typer, simulate_app: typer.Typer) -> None:
    """Add `entitle initdata` to the command line."""
    root.add_typer(app, name="initdata")


@app.command("debug")
def debug(
    init_data: str = typer.Argument(..., metavar="INITDATA", help="The raw initData (Telegram.WebApp.initData), quoted."),
    token: Optional[str] = typer.Option(
        None, "--token", help="Bot token for the hash check (default: TELEGRAM_BOT_TOKEN). Never printed.", show_default=False
    ),
    max_age: Optional[int] = typer.Option(
        None, "--max-age", min=0, help="Seconds an initData stays valid (default: INITDATA_MAX_AGE); 0 skips the age check."
    ),
    bot_id: Optional[int] = typer.Option(None, "--bot-id", min=1, help="Bot id for the third-party (Ed25519) signature check."),
    environment: Optional[Environment] = typer.Option(
        None, "--environment", help="Which Telegram key checks the signature (default: TELEGRAM_ENVIRONMENT)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Run every check on an initData and show each one; exit 0 when valid, 1 when not."""
    if environment is not None and bot_id is None:
        fail("--environment only applies to the signature check: give --bot-id too", USAGE)
    # Settings are read only for what the options leave open, so a broken .env cannot block a debug run.
    if token is None or max_age is None or (bot_id is not None and environment is None):
        settings = context.settings()
        token = token if token is not None else settings.telegram_bot_token
        max_age = max_age if max_age is not None else settings.initdata_max_age
        if environment is None:
            environment = Environment(settings.telegram_environment)
    if not token and bot_id is None:
        fail("nothing to check against: pass --token, set TELEGRAM_BOT_TOKEN, or pass --bot-id", USAGE)
    result = explain(
        init_data,
        bot_token=token or None,
        bot_id=bot_id,
        environment=environment.value if environment else "production",
        max_age=max_age,
    )
    if as_json:
        print_json({**result.to_dict(), "likely_cause": LIKELY_CAUSES.get(result.reason) if result.reason else None})
    else:
        console.print(_render(result))
    raise typer.Exit(0 if result.valid else 1)


@app.command("sign")
def sign(
    user_id: int = typer.Option(..., "--user-id", min=1, help="The Telegram user id to sign in as."),
    username: Optional[str] = typer.Option(None, "--username", help="The user's @username, without the @."),
    first_name: str = typer.Option("Developer", "--first-name", help="The user's first name."),
    language: str = typer.Option("en", "--language", help="The user's language_code."),
    token: Optional[str] = typer.Option(
        None, "--token", help="Bot token to sign with (default: TELEGRAM_BOT_TOKEN). Never printed.", show_default=False
    ),
    as_url: bool = typer.Option(
        False, "--url", help="Print the Mini App's address (PUBLIC_URL/app) carrying it, to open signed in in any browser."
    ),
) -> None:
    """Print an initData signed with the bot token, for local development (valid for INITDATA_MAX_AGE)."""
    settings = context.settings() if token is None or as_url else None
    token = token if token is not None else settings.telegram_bot_token
    if not token:
        fail("no bot token: pass --token or set TELEGRAM_BOT_TOKEN", USAGE)
    user = {"id": user_id, "first_name": first_name, "language_code": language, "allows_write_to_pm": True}
    if username:
        user["username"] = username.lstrip("@")
    try:
        raw = sign_init_data(token, user=user, chat_type="sender", chat_instance=str(user_id))
    except (InitDataError, ValueError) as exc:
        fail(str(exc), USAGE)
    # Plain stdout, not rich: a wrapped line would break the string for `$(entitle initdata sign …)`.
    typer.echo(launch_url(settings.public_url, raw) if as_url else raw)


def launch_url(public_url: str, init_data: str) -> str:
    """The Mini App's address with initData in its fragment, where Telegram puts it when it opens the app."""
    fragment = urlencode({"tgWebAppData": init_data, "tgWebAppVersion": LAUNCH_VERSION, "tgWebAppPlatform": "unknown"}, quote_via=quote)
    return f"{public_url.rstrip('/')}/app#{fragment}"


def _render(result: Explanation) -> Group:
    if result.valid:
        verdict = Text("initData is valid", style="bold green")
    else:
        verdict = Text.assemble(("initData is invalid: ", "bold red"), (result.reason or "unknown", "bold"))
        if result.reason in REASONS:
            verdict.append(f" — {REASONS[result.reason]}")
    parts = [Panel(verdict, expand=False)]
    if not result.valid and result.reason in LIKELY_CAUSES:
        parts.append(Text.assemble(("likely cause: ", "bold"), LIKELY_CAUSES[result.reason]))

    if result.fields:
        fields = Table(title="Fields", title_justify="left", header_style="bold", show_lines=False)
        fields.add_column("key", style="cyan", no_wrap=True)
        fields.add_column("value", overflow="fold")
        for key, value in result.fields.items():
            fields.add_row(Text(key), Text(_pretty(key, value)))
        parts.append(fields)

    checks = Table(title="Checks", title_justify="left", header_style="bold")
    checks.add_column("check", no_wrap=True)
    checks.add_column("result", no_wrap=True)
    checks.add_column("detail", overflow="fold")
    checks.add_column("reason", style="red", no_wrap=True)
    for step in result.steps:
        if step.name == "data_check_string":
            continue
        checks.add_row(Text(step.name), MARKS[step.ok], Text(step.detail), Text(step.reason or ""))
    parts.append(checks)

    dcs = next((s for s in result.steps if s.name == "data_check_string"), None)
    if dcs is not None:
        parts.append(Panel(Text(dcs.detail), title="data-check-string (hashed with the bot token)", title_align="left"))
    return Group(*parts)


def _pretty(key: str, value: str) -> str:
    if key in ("user", "receiver", "chat") and value.startswith("{"):
        try:
            return json.dumps(json.loads(value), ensure_ascii=False, indent=1)
        except ValueError:
            pass
    return value
