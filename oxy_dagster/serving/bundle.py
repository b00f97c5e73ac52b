"""The deployable bundle: everything the service needs to answer, in one folder, no pickles.

    manifest.json        model config, SID version + codebook fingerprint, source checkpoint, choice figures
                         (an ensemble: ``members``, each member's config; format ``oxyrec-bundle/2``)
    model.safetensors    generator weights (an ensemble's members under ``members.<i>.``)
    catalogue.parquet    item_id, codes c1..cL, leaf-category id, brand id (row = the model's item row)
    item_text.safetensors  the frozen item text vectors the model's adapter reads
    users.parquet        user_id and profile fields (for requests that send only a user id)
    pools.json           scenario -> item ids (the scenario's candidate pool)

The trie is rebuilt from the codes at load (deterministic; a few ms for 12k items), so the bundle cannot
hold a trie that disagrees with its codes. ``load_bundle`` returns a ready ``ServingModel``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file

from ..io import atomic_dir, write_json, write_parquet, write_safetensors
from ..model.config import GeneratorConfig
from ..model.data import Catalogue
from ..model.ensemble import GeneratorEnsemble
from ..model.generator import Generator

FORMAT = "oxyrec-bundle/1"  # one generator
ENSEMBLE_FORMAT = "oxyrec-bundle/2"  # a GeneratorEnsemble: members decoded as one (readers of /1 refuse it)


@dataclass
class ServingModel:
    model: Generator | GeneratorEnsemble
    catalogue: Catalogue
    manifest: dict
    users: pd.DataFrame  # indexed by user_id: age_band, gender, city, spending_tier
    pools: dict[str, np.ndarray]  # scenario -> item rows

    @property
    def version(self) -> str:
        return str(self.manifest.get("model_version", "local"))


def export_bundle(out: str | Path, model: Generator | GeneratorEnsemble, cat: Catalogue, city_vocab: list[str],
                  users: pd.DataFrame, pools: dict[str, list[str]], info: dict) -> Path:
    """Write the bundle atomically (a folder appears complete or not at all)."""
    members = list(getattr(model, "members", []))
    for i, m in enumerate(members[1:], 1):  # the service builds one request tensor for every member
        if (m.cfg.max_short, m.cfg.text_dim) != (members[0].cfg.max_short, members[0].cfg.text_dim):
            raise ValueError(f"ensemble member {i} reads history {m.cfg.max_short} / text {m.cfg.text_dim}, member 0 "
                             f"{members[0].cfg.max_short} / {members[0].cfg.text_dim}: one request cannot feed both")
    text = (members[0] if members else model).item_text[:-1]  # drop the padding row
    kind = {"format": ENSEMBLE_FORMAT, "members": [asdict(m.cfg) for m in members]} if members else {"format": FORMAT}
    with atomic_dir(out) as tmp:
        tmp.mkdir()
        write_safetensors(tmp / "model.safetensors", model.state_dict())
        table = pd.DataFrame({"item_id": cat.item_ids, "cate": cat.cate, "brand": cat.brand,
                              **{f"c{i + 1}": cat.codes[:, i] for i in range(cat.codes.shape[1])}})
        write_parquet(table, tmp / "catalogue.parquet")
        write_safetensors(tmp / "item_text.safetensors", {"text": text})
        write_parquet(users[["user_id", "age_band", "gender", "city", "spending_tier"]], tmp / "users.parquet")
        write_json(tmp / "pools.json", {s: list(map(str, ids)) for s, ids in pools.items()})
        write_json(tmp / "manifest.json", {**kind, "model": asdict(model.cfg), "sid_version": cat.version,
                                           "sid_fingerprint": cat.fingerprint(), "city_vocab": city_vocab, **info})
    return Path(out)


def load_bundle(path: str | Path) -> ServingModel:
    path = Path(path)
    manifest = json.loads((path / "manifest.json").read_text())
    if manifest.get("format") not in (FORMAT, ENSEMBLE_FORMAT):
        raise ValueError(f"{path} is not an OxyRec bundle ({manifest.get('format')!r} not in "
                         f"{(FORMAT, ENSEMBLE_FORMAT)})")
    table = pd.read_parquet(path / "catalogue.parquet")
    code_cols = sorted((c for c in table.columns if c[0] == "c" and c[1:].isdigit()), key=lambda c: int(c[1:]))
    cat = Catalogue(table.item_id.to_numpy().astype(str), table[code_cols].to_numpy(np.int64),
                    table.cate.to_numpy(np.int64), table.brand.to_numpy(np.int64), manifest["sid_version"])
    if cat.fingerprint() != manifest["sid_fingerprint"]:
        raise ValueError(f"{path}: codes do not match the manifest's SID fingerprint")
    text = load_file(str(path / "item_text.safetensors"))["text"]
    ensemble = manifest["format"] == ENSEMBLE_FORMAT
    generators = [Generator(GeneratorConfig.from_saved(c), torch.from_numpy(cat.codes), torch.from_numpy(cat.cate),
                            torch.from_numpy(cat.brand), text)
                  for c in (manifest["members"] if ensemble else [manifest["model"]])]
    model = GeneratorEnsemble(generators) if ensemble else generators[0]
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    users = pd.read_parquet(path / "users.parquet").set_index("user_id")
    pools = {s: np.array([cat.row[i] for i in ids if i in cat.row], dtype=np.int64)
             for s, ids in json.loads((path / "pools.json").read_text()).items()}
    return ServingModel(model.eval(), cat, manifest, users, pools)
