"""`GET /app`: the Mini App page (static HTML, CSS and JavaScript from `webapp/static/`)."""
from __future__ import annotations

from flask import Blueprint, current_app

bp = Blueprint("miniapp", __name__)

# The page runs only our own scripts and Telegram's; everything it fetches is same-origin.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' https://telegram.org",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: https:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
    ]
)


@bp.get("/app")
def page():
    """The Mini App page that Telegram opens from the bot.
    ---
    get:
      summary: The Mini App page
      tags: [mini app]
      responses:
        "200":
          description: the page
          content:
            text/html:
              schema: {type: string}
    """
    response = current_app.send_static_file("app.html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
