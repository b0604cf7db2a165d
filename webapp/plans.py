"""`GET /api/plans`: the catalogue as JSON."""
from __future__ import annotations

from flask import Blueprint, jsonify

from webapp.context import catalogue

bp = Blueprint("plans", __name__)


@bp.get("/api/plans")
def list_plans():
    """Every plan with its prices.
    ---
    get:
      summary: The plan catalogue
      tags: [mini app]
      responses:
        "200":
          description: every plan
          content:
            application/json:
              schema:
                type: object
                required: [plans]
                properties:
                  plans: {type: array, items: {$ref: "#/components/schemas/Plan"}}
    """
    return jsonify({"plans": [plan.to_dict() for plan in catalogue()]})
