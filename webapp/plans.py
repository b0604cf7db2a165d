"""`GET /api/plans`: the catalogue as JSON."""
from __future__ import annotations

from flask import Blueprint, jsonify

from webapp.context import catalogue

bp = Blueprint("plans", __name__)


@bp.get("/api/plans")
def list_plans():
    """Every plan with its prices."""
    return jsonify({"plans": [plan.to_dict() for plan in catalogue()]})
