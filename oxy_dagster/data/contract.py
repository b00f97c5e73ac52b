"""The data contract: the tables a shop brings (items, users, events, and optionally impressions).

Every field is declared once here; validation (``validate.py``) turns these
declarations into Spark column checks, so the rules and the error messages
cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BEHAVIORS = ("click", "cart", "purchase")
# The paper's scenarios (seed section 2.3.4, Table 1; section 4.5 phases).
SCENARIOS = ("homepage", "channel", "related", "cart", "search")
SCENARIOS_WITH_TRIGGER = ("channel", "related", "cart")
AGE_BANDS = ("<18", "18-24", "25-34", "35-44", "45-54", "55+")
GENDERS = ("F", "M", "U")
SPENDING_TIERS = ("low", "mid", "high")
CATEGORY_SEP = " > "


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # "id" | "text" | "float" | "int" | "timestamp" | "enum"
    required: bool = True
    allowed: tuple[str, ...] = ()
    unique: bool = False
    references: str | None = None  # "items.item_id" / "users.user_id"
    min_value: float | None = None
    doc: str = ""


@dataclass(frozen=True)
class TableContract:
    name: str
    fields: tuple[Field, ...]
    doc: str = ""

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def required(self) -> list[str]:
        return [f.name for f in self.fields if f.required]

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")


ITEMS = TableContract(
    "items",
    (
        Field("item_id", "id", unique=True, doc="stable item identifier"),
        Field("title", "text", required=False, doc="display title (HTML entities unescaped)"),
        Field("brand", "text", required=False),
        Field("category_path", "text", doc=f"category levels joined by '{CATEGORY_SEP}', coarse to fine"),
        Field("price", "float", required=False, min_value=0.0),
        Field("image_path", "text", required=False, doc="local path or URL of the main image"),
    ),
    doc="item catalogue",
)

USERS = TableContract(
    "users",
    (
        Field("user_id", "id", unique=True),
        Field("age_band", "enum", required=False, allowed=AGE_BANDS),
        Field("gender", "enum", required=False, allowed=GENDERS),
        Field("city", "text", required=False, doc="city or coarse location (e.g. zip prefix)"),
        Field("spending_tier", "enum", required=False, allowed=SPENDING_TIERS),
    ),
    doc="user profiles (all profile fields optional)",
)

EVENTS = TableContract(
    "events",
    (
        Field("user_id", "id", references="users.user_id"),
        Field("item_id", "id", references="items.item_id"),
        Field("timestamp", "timestamp", doc="epoch seconds or ISO-8601, UTC"),
        Field("behavior", "enum", allowed=BEHAVIORS),
        Field("scenario", "enum", allowed=SCENARIOS),
        Field("trigger_item_id", "id", required=False, references="items.item_id",
              doc="channel entry / main item / carted item for trigger scenarios"),
        Field("query", "text", required=False, doc="search query (search scenario)"),
        Field("request_id", "id", required=False, doc="the request whose shown list this event acted on"),
    ),
    doc="behaviour log",
)

IMPRESSIONS = TableContract(
    "impressions",
    (
        Field("request_id", "id", doc="one recommendation request (one shown list)"),
        Field("user_id", "id", references="users.user_id"),
        Field("item_id", "id", references="items.item_id"),
        Field("timestamp", "timestamp", doc="when the list was shown"),
        Field("scenario", "enum", allowed=SCENARIOS),
        Field("position", "int", min_value=0, doc="0-based rank of the item in the shown list"),
        Field("trigger_item_id", "id", required=False, references="items.item_id"),
        Field("query", "text", required=False),
    ),
    doc="what each request showed (optional; labels come from events with the same request_id)",
)

CONTRACTS = {c.name: c for c in (ITEMS, USERS, EVENTS, IMPRESSIONS)}
OPTIONAL_TABLES = ("impressions",)  # a dataset may lack these; an empty typed table stands in

# Next-token loss weights by behaviour (seed 2.3.4: purchase > cart > click).
DEFAULT_BEHAVIOR_WEIGHTS = {"click": 1.0, "cart": 2.0, "purchase": 4.0}


@dataclass
class ValidationPolicy:
    """How much bad input a run tolerates before failing (per table)."""

    max_bad_fraction: float = 0.01
    examples_in_error: int = 5
    overrides: dict[str, float] = field(default_factory=dict)

    def limit_for(self, table: str) -> float:
        return self.overrides.get(table, self.max_bad_fraction)
