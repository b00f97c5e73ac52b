"""Requests -> recommendation lists for one loaded bundle (no HTTP here: the service wraps it).

A request names a user and a scenario, optionally a trigger item, a query, a history, a candidate
pool, the list size, the beam and the decoding mode. The runtime fills what the request leaves out
from the stores the pipeline writes (zero LLM calls on this path, seed section 3.3):

* history: the request's, else the user's stored history, else none (cold start);
* instruction: the query's embedding when the request has a query, else the user's stored
  near-line / daily instruction vector, else the model's learnable default;
* profile: the bundle's user table (unknown users get the unknown profile).

A store that fails is treated as missing (cold-start path) and counted, never raised to the caller.
Requests decode in batches: one encoder pass and one grouped beam search per group of requests that
share a candidate pool, a beam width and a decoding mode.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch

from ..data.contract import SCENARIOS
from ..model.data import BEHAVIOR_IDS, PROFILE_VOCABS, user_hash
from ..model.fast_decoding import BeamDecoder, SampleConfig
from ..model.trie import CodeTrie, DenseTrie
from .bundle import ServingModel

MAX_LONG = 64  # long-history items the encoder's IGR picks from (as in training)


@dataclass
class RecRequest:
    user_id: str
    scenario: str
    trigger_item: str | None = None
    query: str | None = None
    history: list[str] | None = None  # item ids, oldest first
    history_behaviors: list[str] | None = None  # click | cart | purchase per history item (default: click)
    k: int = 10
    beam: int = 256
    mode: str = "beam"  # beam | sample
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    pool: str | None = None  # a named scenario pool of the bundle
    pool_items: list[str] | None = None  # or explicit candidate item ids
    exclude_history: bool = False
    use_instruction: bool = True  # read the user's stored instruction (False: the model's default)


@dataclass
class RecResult:
    items: list[str]
    scores: list[float]
    sids: list[list[int]]
    model_version: str
    instruction: str  # query | stored | default
    history: str  # request | store | none
    cold_start: bool
    notes: list[str] = field(default_factory=list)


class Runtime:
    def __init__(self, served: ServingModel, store=None, text_encoder=None, compile: bool = False):
        self.served = served
        self.model = served.model
        self.cat = served.catalogue
        self.store = store
        self.store_lock = threading.Lock()  # one SQLite connection / Redis client shared by worker threads
        self.encoder = text_encoder
        self.counters: Counter = Counter()
        self.trie = CodeTrie.build(self.cat.codes, list(self.model.cfg.code_vocab))
        self.compile = compile
        self.decoders: dict = {None: (BeamDecoder(self.model, DenseTrie.from_trie(self.trie), compile), None)}
        self.city = {c: i + 1 for i, c in enumerate(served.manifest["city_vocab"])}
        self.profile_ids = {k: {v: i + 1 for i, v in enumerate(vals)} for k, vals in PROFILE_VOCABS.items()}

    @property
    def version(self) -> str:
        return self.served.version

    # ----- stores -------------------------------------------------------------------------------------
    def _store(self, method: str, user_id: str):
        if self.store is None:
            return None
        try:
            with self.store_lock:
                return getattr(self.store, method)(user_id)
        except Exception:  # noqa: BLE001 - a store outage degrades to the cold-start path, counted
            self.counters["store_errors"] += 1
            return None

    # ----- one request -> model inputs ---------------------------------------------------------------
    def _features(self, req: RecRequest) -> tuple[dict, dict]:
        cfg, pad = self.model.cfg, self.cat.pad
        info = {"notes": []}
        if req.history is not None:
            behaviors = req.history_behaviors or ["click"] * len(req.history)
            if len(behaviors) != len(req.history):
                raise ValueError("history_behaviors must have one entry per history item")
            events, info["history"] = list(zip(req.history, behaviors)), "request"
        else:
            stored = self._store("get_history", req.user_id)
            events, info["history"] = (stored, "store") if stored else ([], "none")
        rows = [self.cat.row.get(i, pad) for i, _ in events]
        if any(r == pad for r in rows):
            info["notes"].append(f"{sum(r == pad for r in rows)} history item(s) not in the catalogue")
        behaviors = [BEHAVIOR_IDS.get(b, 1) for _, b in events]
        short, beh = rows[-cfg.max_short:], behaviors[-cfg.max_short:]
        long_ = rows[:-cfg.max_short][-MAX_LONG:] if len(rows) > cfg.max_short else []
        t = {"short_items": np.full(cfg.max_short, pad), "short_behaviors": np.zeros(cfg.max_short, np.int64),
             "long_items": np.full(MAX_LONG, pad)}
        if short:
            t["short_items"][-len(short):], t["short_behaviors"][-len(beh):] = short, beh
        if long_:
            t["long_items"][-len(long_):] = long_
        t["scenario"] = SCENARIOS.index(req.scenario)
        t["trigger"] = self.cat.row.get(req.trigger_item, pad) if req.trigger_item else pad
        reasoning, has = np.zeros(cfg.text_dim, np.float32), False
        if req.query and self.encoder is not None:
            reasoning, has, info["instruction"] = self.encoder.encode([req.query], progress=False)[0], True, "query"
        else:
            rec = self._store("get", req.user_id) if req.use_instruction else None
            if rec is not None and len(rec.vector) == cfg.text_dim:
                reasoning, has, info["instruction"] = rec.vector, True, "stored"
            else:
                info["instruction"] = "default"
        t["reasoning"], t["has_reasoning"] = reasoning, has
        profile = self.served.users.loc[req.user_id] if req.user_id in self.served.users.index else None
        for k, ids in self.profile_ids.items():
            t[f"profile_{k}"] = ids.get(profile[k], 0) if profile is not None else 0
        t["profile_city"] = self.city.get(profile["city"], 0) if profile is not None else 0
        t["user_hash"] = user_hash(req.user_id)
        t["target"], t["weight"] = pad, 1.0
        info["cold_start"] = profile is None and not events
        info["exclude"] = rows if req.exclude_history else []
        return t, info

    def _decoder(self, req: RecRequest):
        if req.pool_items is not None:
            key = ("items", tuple(sorted(set(req.pool_items))))
            rows = [self.cat.row[i] for i in key[1] if i in self.cat.row]
        elif req.pool is not None:
            key, rows = ("pool", req.pool), self.served.pools[req.pool]
        else:
            return self.decoders[None]
        if key not in self.decoders:
            if len(self.decoders) > 64:  # explicit item pools are cached, within bounds
                self.decoders = {k: v for k, v in self.decoders.items() if k is None or k[0] == "pool"}
            trie, leaf_rows = self.trie.restrict(self.cat.codes, np.asarray(rows, dtype=np.int64))
            self.decoders[key] = (BeamDecoder(self.model, DenseTrie.from_trie(trie), self.compile),
                                  torch.from_numpy(leaf_rows))
        return self.decoders[key]

    # ----- a batch of requests ------------------------------------------------------------------------
    @torch.inference_mode()
    def recommend(self, requests: list[RecRequest]) -> list[RecResult]:
        feats = [self._features(r) for r in requests]
        groups: dict = {}
        for i, r in enumerate(requests):
            sampling = (r.temperature, r.top_k, r.top_p, r.seed, i) if r.mode == "sample" else None
            groups.setdefault((id(self._decoder(r)[0]), r.beam, r.mode, sampling), []).append(i)
        out: list[RecResult | None] = [None] * len(requests)
        for (_, beam, mode, _), idx in groups.items():
            decoder, leaf_rows = self._decoder(requests[idx[0]])
            batch = {k: torch.as_tensor(np.stack([feats[i][0][k] for i in idx])) for k in feats[idx[0]][0]}
            batch["reasoning"] = batch["reasoning"].float()
            batch["weight"] = batch["weight"].float()
            width = max(len(feats[i][1]["exclude"]) for i in idx)
            exclude = None
            if width:
                exclude = torch.full((len(idx), width), self.cat.pad, dtype=torch.long)
                for j, i in enumerate(idx):
                    ex = feats[i][1]["exclude"]
                    exclude[j, :len(ex)] = torch.as_tensor(ex, dtype=torch.long)
            first = requests[idx[0]]
            sample = SampleConfig(first.temperature, first.top_k, first.top_p, first.seed) if mode == "sample" else None
            k = max(requests[i].k for i in idx)
            items, scores = decoder.decode(batch, beam=beam, topk=k, exclude=exclude, leaf_rows=leaf_rows, mode=mode,
                                           sample=sample)
            for j, i in enumerate(idx):
                keep = items[j, :requests[i].k]
                keep = keep[keep >= 0].numpy()
                info = feats[i][1]
                out[i] = RecResult([str(x) for x in self.cat.item_ids[keep]],
                                   [float(s) for s in scores[j, :len(keep)]],
                                   self.cat.codes[keep].tolist(), self.version, info["instruction"], info["history"],
                                   info["cold_start"], info["notes"])
                self.counters[f"instruction_{info['instruction']}"] += 1
        return out
