"""LLM access for slow thinking, only through the official ``openai`` client.

Any OpenAI-compatible endpoint works (OpenAI, vLLM, a llama.cpp server): base URL,
model and key come from ``LLMConfig`` or ``OXY_LLM_BASE_URL`` / ``OXY_LLM_MODEL`` /
``OXY_LLM_API_KEY``. Every call has a timeout and bounded retries with
exponential backoff (rate limits, timeouts, connection and 5xx errors); a
semaphore caps concurrent requests; answers are cached in SQLite by the hash of
(model, messages, schema), so a rerun costs nothing. The answer must be JSON
``{"instruction": ..., "reason": ...}`` and pass ``validate``; anything else is
counted as a failure and returned as ``None``: the caller keeps the last good
instruction or the default. The key is never logged or put in a prompt.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

INSTRUCTION_SCHEMA = {
    "type": "object",
    "properties": {"instruction": {"type": "string", "minLength": 3, "maxLength": 200},
                   "reason": {"type": "string", "minLength": 3, "maxLength": 300}},
    "required": ["instruction", "reason"],
}
_BAD = re.compile(r"(?i)([<>{}]|ignore (all |the )?previous|system prompt|api[_ -]?key|https?://)")


@dataclass
class LLMConfig:
    base_url: str = ""  # "" -> $OXY_LLM_BASE_URL, else the embedded local server
    model: str = ""  # "" -> $OXY_LLM_MODEL, else the local server's alias
    api_key: str = ""  # "" -> $OXY_LLM_API_KEY (never logged)
    timeout_s: float = 60.0
    max_retries: int = 2
    backoff_s: float = 0.5
    concurrency: int = 1  # a llama.cpp server answers one request at a time; raise it for vLLM / OpenAI
    max_tokens: int = 96
    temperature: float = 0.2
    # "none": the prompt's worked example sets the JSON shape (fast on small local models); "json_schema"
    # (OpenAI / vLLM structured output) or "json_object_schema" (llama.cpp grammar; slow on CPU) constrain it
    json_mode: str = "none"
    cache_path: str = ""  # "" -> no cache

    def resolved(self) -> LLMConfig:
        from dataclasses import replace

        return replace(self, base_url=self.base_url or os.environ.get("OXY_LLM_BASE_URL", ""),
                       model=self.model or os.environ.get("OXY_LLM_MODEL", ""),
                       api_key=self.api_key or os.environ.get("OXY_LLM_API_KEY", "not-needed"))


def validate(answer: dict) -> dict:
    """The instruction record, or ValueError: strings of sane length, no injected markup or links."""
    if not isinstance(answer, dict):
        raise ValueError("answer is not a JSON object")
    out = {}
    for key, (lo, hi) in (("instruction", (3, 200)), ("reason", (3, 300))):
        value = answer.get(key)
        if not isinstance(value, str):
            raise ValueError(f"{key} missing or not a string")
        value = " ".join(value.split())
        if not lo <= len(value) <= hi:
            raise ValueError(f"{key} length {len(value)} outside [{lo}, {hi}]")
        if _BAD.search(value) or sum(c.isalpha() for c in value) < 3:
            raise ValueError(f"{key} fails the content check: {value[:60]!r}")
        out[key] = value
    return out


@dataclass
class LLMStats:
    counts: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **kv) -> None:
        with self.lock:
            self.counts.update(kv)

    def as_dict(self) -> dict:
        return dict(self.counts)


class InstructionLLM:
    def __init__(self, cfg: LLMConfig):
        import openai

        self.cfg = cfg.resolved()
        if not self.cfg.base_url:
            raise ValueError("no LLM endpoint: set LLMConfig.base_url or OXY_LLM_BASE_URL (or use LocalLLMServer)")
        self.client = openai.OpenAI(base_url=self.cfg.base_url, api_key=self.cfg.api_key,
                                    timeout=self.cfg.timeout_s, max_retries=0)
        self.stats = LLMStats()
        self._sem = threading.Semaphore(max(1, self.cfg.concurrency))
        self._cache = _Cache(Path(self.cfg.cache_path)) if self.cfg.cache_path else None
        if not self.cfg.model:
            self.cfg.model = self.client.models.list().data[0].id

    def _response_format(self) -> dict | None:
        mode = self.cfg.json_mode
        if mode == "json_object_schema":
            return {"type": "json_object", "schema": INSTRUCTION_SCHEMA}
        if mode == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "instruction", "schema": INSTRUCTION_SCHEMA}}
        return {"type": "json_object"} if mode == "json_object" else None

    def complete(self, messages: list[dict]) -> dict | None:
        """One validated {instruction, reason}, or None after counting why."""
        import openai

        key = hashlib.sha256(json.dumps([self.cfg.model, messages, self.cfg.json_mode]).encode()).hexdigest()
        if self._cache is not None and (hit := self._cache.get(key)) is not None:
            self.stats.add(cache_hits=1)
            return hit
        retryable = (openai.RateLimitError, openai.APITimeoutError, openai.APIConnectionError,
                     openai.InternalServerError)
        for attempt in range(self.cfg.max_retries + 1):
            try:
                with self._sem:
                    kwargs = {"response_format": fmt} if (fmt := self._response_format()) else {}
                    resp = self.client.chat.completions.create(
                        model=self.cfg.model, messages=messages, max_tokens=self.cfg.max_tokens,
                        temperature=self.cfg.temperature, **kwargs)
                break
            except retryable as exc:
                self.stats.add(**{f"error_{type(exc).__name__}": 1})
                if attempt == self.cfg.max_retries:
                    self.stats.add(failures=1)
                    return None
                time.sleep(self.cfg.backoff_s * 2 ** attempt)
            except openai.APIError as exc:
                self.stats.add(failures=1, **{f"error_{type(exc).__name__}": 1})
                return None
        self.stats.add(requests=1)
        if resp.usage is not None:
            self.stats.add(prompt_tokens=resp.usage.prompt_tokens or 0,
                           completion_tokens=resp.usage.completion_tokens or 0)
        try:
            record = validate(json.loads(_strip_fences(resp.choices[0].message.content or "")))
        except (ValueError, json.JSONDecodeError):
            self.stats.add(failures=1, invalid_answers=1)
            return None
        if self._cache is not None:
            self._cache.put(key, record)
        return record

    def complete_many(self, prompts: list[list[dict]], progress: str | None = None) -> list[dict | None]:
        from tqdm import tqdm

        with ThreadPoolExecutor(max_workers=max(1, self.cfg.concurrency)) as pool:
            return list(tqdm(pool.map(self.complete, prompts), total=len(prompts), desc=progress or "llm",
                             disable=progress is None, mininterval=2))


def _strip_fences(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        text = text.strip("`")
        text = text[text.find("{"):] if "{" in text else text
    return text


class _Cache:
    """Prompt-hash -> validated answer, in SQLite (thread-safe, one connection per call)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        with sqlite3.connect(self.path) as db:
            db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def get(self, key: str) -> dict | None:
        with sqlite3.connect(self.path, timeout=30) as db:
            row = db.execute("SELECT value FROM answers WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict) -> None:
        with sqlite3.connect(self.path, timeout=30) as db:
            db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?)", (key, json.dumps(value)))
