"""The Flask application: webhooks, the Mini App API and page, health and metrics."""
from __future__ import annotations

import logging

import contextlib

from flask import Flask, abort, g, request

from app import db, metrics
from app.access import rules as access_rules
from app.access import transitions
from app.config import Settings, check_for_startup, load_settings
from webapp.auth import init_auth
from webapp.body import GuardedJSONProvider, buffer_unsized_body
from webapp.errors import register_error_handlers
from webapp.headers import init_header_limit
from workers import metrics_relay
from workers.runtime import Runtime, build_runtime

log = logging.getLogger(__name__)

WEBHOOK_PROVIDERS = {"/webhooks/telegram": "telegram", "/webhooks/stripe": "stripe"}


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> Flask:
    """Build the application on a runtime (built here from `settings`, else the environment's, when none is given).

    Refuses to start with bad secrets in production or a bad plan file.
    """
    if runtime is None:
        runtime = build_runtime(settings or load_settings())
    settings = runtime.settings
    check_for_startup(settings)
    runtime.catalogue()  # a bad plan file stops start-up, naming the file, plan and problem

    app = Flask(__name__, static_folder="static", static_url_path="/static")
    app.json = GuardedJSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    app.extensions["entitle"] = runtime
    # This host's metrics go to the shared Redis for the other hosts' `/metrics` (docs/SCALING.md).
    app.extensions["entitle_host_metrics"] = metrics_relay.publish_from_this_process(settings)
    register_error_handlers(app)
    init_auth(app, settings)
    init_header_limit(app)

    @app.before_request
    def _limit_body():
        # Refuse early on the declared length; a body without one (chunked) is read here, before any route.
        if request.content_length is not None and request.content_length > settings.max_body_bytes:
            abort(413)
        buffer_unsized_body(settings.max_body_bytes)

    @app.after_request
    def _count_webhook_requests(response):
        # App-wide and by path: a 405 or 413 never reaches a blueprint's own hooks.
        provider = WEBHOOK_PROVIDERS.get(request.path)
        if provider:
            metrics.webhook_requests.labels(provider=provider, status=str(response.status_code)).inc()
        return response

    @app.before_request
    def _open_grant_changes():
        # Grants a request changes (a return from Checkout, the backend's API) set off their transitions'
        # consumers by the catalogue's rules; the events they record go to the workers once the request is done.
        stack = contextlib.ExitStack()
        stack.enter_context(access_rules.using(runtime.catalogue_if_readable()))
        g.recorded_events = stack.enter_context(transitions.collecting_hand_offs())
        g.grant_changes = stack

    @app.after_request
    def _hand_off_recorded(response):
        for event_id in g.pop("recorded_events", ()):
            runtime.enqueue(event_id)
        return response

    @app.teardown_request
    def _close_db(exc):
        stack = g.pop("grant_changes", None)
        if stack is not None:
            stack.close()
        if not db.database.is_closed() and not db.database.in_transaction():
            db.database.close()

    for blueprint in blueprints():
        app.register_blueprint(blueprint)
    return app


def blueprints() -> list:
    """Every blueprint of the application, in the order they are registered."""
    from webapp import backend_api, health, miniapp, openapi, paywall, plans, purchase, session, stripe, subscriptions, telegram, ways

    modules = (health, plans, telegram, stripe, session, miniapp, purchase, paywall, ways, subscriptions, backend_api, openapi)
    return [module.bp for module in modules]
