"""The tokenized-data cache: one folder per fingerprint under `$PHITUNE_CACHE/data/` (default
`~/.cache/phitune/data/`), written once and memory-mapped by every later run and rank.

The fingerprint covers everything that changes the tokens or which records are usable, and nothing
else (a new learning rate reuses the cache): the file's content (a streamed BLAKE2 hash) and size,
the task section (type, keys, labels), the tokenizer (its full serialization and special tokens),
the chat template, `train.max_seq_len`, `data.max_record_bytes`, and this format's version. The
path is not part of it: the same bytes under another name map the same cache. Hashing a large file
takes a few seconds, so the hash is remembered per file identity (path, size, mtime, inode).

A folder holds `examples.arrow` (Apache Arrow IPC: per example the token ids, the labels (-100
where nothing is learned), the length, the record index, line and byte offset), `problems.jsonl`
(every bad record), and `meta.json` (counts, length statistics, what it was built from). It is
built under a file lock into a temporary folder and renamed into place, so a killed build never
leaves a half cache, and two processes (or ranks) never build the same one twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from phitune.files import write_text_atomic
from phitune.local_cache import cache_root, exclusive_lock

FORMAT_VERSION = 2  # 2: generative labels as a one-byte learn mask (data/tokenized.py)
HASH_BLOCK = 4 * 1024 * 1024
META, EXAMPLES, PROBLEMS = "meta.json", "examples.arrow", "problems.jsonl"


def data_cache_dir() -> Path:
    return cache_root() / "data"


def content_hash(path: str | os.PathLike) -> str:
    """BLAKE2b of the file's bytes, streamed; remembered per (path, size, mtime, inode)."""
    stat = os.stat(path)
    identity = f"{os.path.realpath(path)}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ino}"
    memo = data_cache_dir() / "hashes" / hashlib.sha256(identity.encode()).hexdigest()[:32]
    with contextlib.suppress(OSError):
        return memo.read_text().strip()
    digest = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    value = digest.hexdigest()
    with contextlib.suppress(OSError):
        write_text_atomic(memo, value)
    return value


def tokenizer_hash(tokenizer) -> str:
    """What decides the ids: the full Rust tokenizer (vocab, merges, normalizer, added tokens), the
    special tokens and the chat template."""
    digest = hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode())
    digest.update(json.dumps([type(tokenizer).__name__, tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token,
                              sorted(str(t) for t in tokenizer.all_special_tokens)]).encode())
    return digest.hexdigest()[:24]


def template_hash(tokenizer) -> str:
    template = tokenizer.chat_template
    text = template if isinstance(template, str) else json.dumps(template, sort_keys=True)
    return hashlib.sha256((text or "").encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Fingerprint:
    """Everything that decides a file's tokenized examples (see the module docstring)."""

    content: str
    size: int
    task: str  # the task section as JSON
    tokenizer: str
    template: str
    max_seq_len: int | None  # None: lengths are measured but nothing is rejected for them
    max_record_bytes: int

    @property
    def key(self) -> str:
        parts = json.dumps([FORMAT_VERSION, self.content, self.size, self.task, self.tokenizer, self.template,
                            self.max_seq_len, self.max_record_bytes])
        return hashlib.sha256(parts.encode()).hexdigest()[:20]


def fingerprint(path: str, task, tokenizer, max_seq_len: int | None, max_record_bytes: int) -> Fingerprint:
    return Fingerprint(content=content_hash(path), size=os.path.getsize(path),
                       task=task.model_dump_json() if hasattr(task, "model_dump_json") else json.dumps(repr(task)),
                       tokenizer=tokenizer_hash(tokenizer), template=template_hash(tokenizer),
                       max_seq_len=max_seq_len, max_record_bytes=max_record_bytes)


def entry_dir(fp: Fingerprint) -> Path:
    return data_cache_dir() / fp.key


def is_ready(folder: Path) -> bool:
    return (folder / META).is_file()


def build_lock(fp: Fingerprint):
    """Exclusive lock on this fingerprint (blocks while another process builds it)."""
    return exclusive_lock(data_cache_dir() / f"{fp.key}.lock")


@contextlib.contextmanager
def atomic_entry(fp: Fingerprint) -> Iterator[Path]:
    """A temporary folder that becomes the entry on success; removed on any failure. Call under
    `build_lock`: leftovers of killed builds of this fingerprint are cleared first."""
    final = entry_dir(fp)
    for stale in final.parent.glob(f"{fp.key}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = final.with_name(f"{fp.key}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@dataclass(frozen=True)
class CacheEntry:
    """One cached file, as `phitune cache list` shows it."""

    key: str
    path: Path
    source: str
    size_bytes: int
    records: int
    examples: int
    created: float


def list_entries() -> list[CacheEntry]:
    root = data_cache_dir()
    entries = []
    if not root.is_dir():
        return entries
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or not is_ready(folder):
            continue
        try:
            meta = json.loads((folder / META).read_text())
        except (OSError, ValueError):
            continue
        size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
        entries.append(CacheEntry(folder.name, folder, meta.get("source", "?"), size, meta.get("records", 0),
                                  meta.get("used", 0), meta.get("created", 0.0)))
    return entries


def clear_entries(keys: list[str] | None = None) -> list[str]:
    """Remove the named entries (all when `keys` is None), each under its lock; the removed keys.
    Temporary folders of builds that were killed go too."""
    root = data_cache_dir()
    if not root.is_dir():
        return []
    removed = []
    for folder in sorted(root.iterdir()):
        key = folder.name.split(".tmp-")[0]
        if not folder.is_dir() or folder.name == "hashes" or (keys is not None and key not in keys):
            continue
        with open(root / f"{key}.lock", "a+") as handle:
            with contextlib.suppress(BlockingIOError):
                _try_lock(handle)  # a build in progress keeps its folder
                shutil.rmtree(folder, ignore_errors=True)
                if ".tmp-" not in folder.name:
                    removed.append(key)
    if keys is None:
        shutil.rmtree(root / "hashes", ignore_errors=True)
    return removed


def _try_lock(handle) -> None:
    try:
        import fcntl
    except ImportError:
        return
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
