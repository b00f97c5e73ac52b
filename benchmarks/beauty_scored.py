"""What keeps a long Beauty run's hours safe: the SASRec peer's package is checked before OxyRec trains, and each SID
version's scored figures are kept beside its models, so a run that fails after scoring (the peer, the plots) resumes
with ``--resume`` and trains only what it lacks.

A one-hour run scores OxyRec after about 80 minutes and only then trains the peer: without these checks a missing
package there cost the whole run's OxyRec half (the first same-run hour of 2026-12-04).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from oxy_dagster.io import write_json

SCORED = "scored.json"


def require_peer_package(args) -> None:
    """Fail before training when this run trains the SASRec peer and RecBole is not installed."""
    if args.no_peer or args.peer_from:
        return
    if importlib.util.find_spec("recbole") is None:
        raise SystemExit("the SASRec peer needs RecBole, which this environment lacks: install the bench extra "
                         "(OXY_EXTRAS=bench bash scripts/setup.sh), or pass --peer-from RESULTS.json or --no-peer")


def run_key(args, recipe: dict) -> dict:
    """What decides a version's scored figures: a kept file is reused only by a run asking for the same."""
    return {"recipe": recipe, "budget_min": args.budget_min, "members": args.members,
            "member_versions": args.member_versions, "size": args.size, "batch_size": args.batch_size,
            "lr": args.lr, "seed": args.seed, "beam": args.beam, "eval_rows": args.eval_rows,
            "curve_every_min": args.curve_every_min, "curve_rows": args.curve_rows,
            "reuse_trained": args.reuse_trained}


def save_scored(out: Path, key: dict, figures: dict) -> Path:
    """Keep one version's scored figures beside its models (atomic: a crash leaves the old file or the new)."""
    return write_json(Path(out) / SCORED, {"key": key, "figures": figures})


def load_scored(out: Path, key: dict) -> dict | None:
    """The figures an earlier run of the same key scored for this version; None where it left none. A file kept
    for another key is refused, naming the file and the settings that differ, rather than reused or overwritten."""
    path = Path(out) / SCORED
    if not path.exists():
        return None
    kept = json.loads(path.read_text())
    differ = sorted(k for k in set(key) | set(kept["key"]) if key.get(k) != kept["key"].get(k))
    if differ:
        raise SystemExit(f"{path} was scored with other settings ({', '.join(differ)}): run without --resume, or "
                         "with another --models-dir")
    return kept["figures"]
