"""Atomic writes, hashing and safe tensor files: every byte ticketpack writes goes through here."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from ticketpack.core.errors import FieldError, TicketpackError, field

M = TypeVar("M", bound=BaseModel)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    try:  # a zombie (dead, not yet reaped) is dead for our purpose
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return True


_STALE_AGE_S = 3600.0
_TEMP_MIDDLE = re.compile(r"(?:(\d+)-)?[a-z0-9_]{8}")  # temp files that name no writer pid (older ticketpack) are stale after an hour


def clean_stale_temps(path: Path) -> list[Path]:
    """Remove the hidden temporary files (``.NAME.PID-XXXX.tmp``) that a crashed writer of ``path`` left beside it:
    those whose writer process is gone (or, for names without a pid, that are over an hour old). Return them."""
    import time

    path = Path(path)
    removed = []
    try:
        candidates = list(path.parent.glob(f".{glob_escape(path.name)}.*.tmp"))
    except OSError:
        return removed
    for tmp in candidates:
        middle = tmp.name[len(path.name) + 2 : -len(".tmp")]
        m = _TEMP_MIDDLE.fullmatch(middle)
        if m is None:  # another file's temporary (``.a.b.*.tmp`` when writing ``a``), or not ours at all
            continue
        try:
            if m.group(1):
                pid = int(m.group(1))
                stale = pid != os.getpid() and not _pid_alive(pid)
            else:
                stale = time.time() - tmp.stat().st_mtime > _STALE_AGE_S
            if stale and tmp.is_file():
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            continue
    return removed


def glob_escape(name: str) -> str:
    import glob

    return glob.escape(name)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds.

    The temporary file is hidden and names this process (``.NAME.PID-XXXX.tmp``); ones a killed writer left behind
    are removed here, the next time ``path`` is written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions open() would
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


DIGEST_FIELD = "digest"


def canonical_digest(doc: dict) -> str:
    """sha256 of a JSON document without its ``digest`` field, in canonical form (sorted keys, no spaces)."""
    import json

    body = {k: v for k, v in doc.items() if k != DIGEST_FIELD}
    return sha256_bytes(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def is_sealed(cls: type[BaseModel]) -> bool:
    """Models with a ``digest`` field are sealed: written with a digest over their content, refused when it differs."""
    return DIGEST_FIELD in cls.model_fields


def seal(model: M) -> M:
    """A copy of ``model`` whose ``digest`` is the digest of its own JSON content (see :func:`canonical_digest`)."""
    import json

    doc = json.loads(model.model_dump_json(exclude={DIGEST_FIELD}))
    return model.model_copy(update={DIGEST_FIELD: canonical_digest(doc)})


def write_model(path: Path, model: BaseModel) -> None:
    """Write a pydantic model as indented JSON, atomically (sealed with its digest if its type has a ``digest``)."""
    if is_sealed(type(model)):
        model = seal(model)
    atomic_write_text(path, model.model_dump_json(indent=2) + "\n")


def check_digest(path: Path, text: str, what: str) -> None:
    """Refuse a sealed file whose content no longer matches the digest it carries."""
    import json

    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        raise TicketpackError(f"{path} is not valid JSON: the {what} is damaged") from None
    if not isinstance(doc, dict):
        raise TicketpackError(f"{path} is not a valid {what}: expected a JSON object")
    recorded = doc.get(DIGEST_FIELD)
    if not recorded:
        raise TicketpackError(f"{path} carries no digest: it was not written by this ticketpack, or was edited; "
                              f"refusing to trust the {what}")
    if canonical_digest(doc) != recorded:
        raise TicketpackError(f"{path} was changed after ticketpack wrote it (its content does not match its "
                              f"digest); refusing to trust the {what}")


def read_model(path: Path, cls: type[M], what: str | None = None) -> M:
    """Read and validate a JSON file; any problem becomes a one-line :class:`TicketpackError`."""
    what = what or cls.__name__
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TicketpackError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TicketpackError(f"cannot read {what} {path}: {exc}") from None
    if is_sealed(cls):
        check_digest(path, text, what)
    try:
        return cls.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise TicketpackError(f"{path} is not a valid {what}: {loc}: {first['msg']}") from None


def read_versioned(path: Path, cls: type[M], version: int, what: str, create_hint: str) -> M:
    """Read a JSON document ticketpack wrote: absent, broken or of another ``schema_version`` is a one-line error."""
    import json

    path = Path(path)
    if not path.parent.is_dir():
        raise TicketpackError(f"{what} directory not found: {path.parent}")
    if not path.exists():
        raise TicketpackError(f"{path.parent} is not a {what} directory (no {path.name}); {create_hint}")
    try:
        found = json.loads(path.read_text(encoding="utf-8")).get("schema_version")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise TicketpackError(f"{path} is not valid JSON: the {what} is damaged") from None
    if found != version:
        raise TicketpackError(f"{path} has schema version {found}; this ticketpack reads {what}s of version {version} only")
    return read_model(path, cls, what)


def _first_existing(path: Path) -> Path:
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe(path: Path, name: str) -> None:
    """Create the missing directories of ``path`` and a file in the deepest, then remove all of it again: whatever
    the file system says no to (a missing parent under /proc, a symlink loop, a name too long, a read-only mount)
    is one line naming the field ``name`` and the reason, before any work starts."""
    created: list[Path] = []
    try:
        base = _first_existing(path)
        missing = []
        p = Path(os.path.abspath(path))
        while p != base:
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            d.mkdir()
            created.append(d)
        fd, probe = tempfile.mkstemp(prefix=".ticketpack-probe-", dir=created[-1] if created else base)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise FieldError(f"{field(name)} {path} cannot be created: {exc.strerror or exc}") from None
    finally:
        for d in reversed(created):
            try:
                d.rmdir()
            except OSError:
                pass


def _exists(path: Path, name: str) -> bool:
    try:
        path.stat()
        return True
    except FileNotFoundError:
        return False
    except OSError as exc:  # a symlink loop, a name too long, a component that is a file
        if exc.errno == 20:  # ENOTDIR: a file where a directory should be (said below, by _first_existing)
            return False
        raise FieldError(f"{field(name)} {path}: {exc.strerror}") from None


def check_creatable_dir(out: Path, name: str = "out") -> None:
    """Refuse, before any work, an output directory that cannot be created or written: a path under a file, an
    existing file, a place without write permission, or anything else the file system refuses (probed by creating
    it and removing it again)."""
    out = Path(out)
    if _exists(out, name):
        if not out.is_dir():
            raise FieldError(f"{field(name)} {out} exists and is not a directory")
        if not os.access(out, os.W_OK | os.X_OK):
            raise FieldError(f"{field(name)} {out}: no permission to write in it")
        return
    base = _first_existing(out)
    if not base.is_dir():
        raise FieldError(f"{field(name)} {out} cannot be created: {base} is a file, not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise FieldError(f"{field(name)} {out} cannot be created: no permission to write in {base}")
    _probe(out, name)


def check_writable_file(path: Path, name: str, force: bool | None = None, what: str | None = None) -> None:
    """Refuse, before any work, a file that cannot be written (its directory cannot be created or written, or it is
    a directory); with ``force`` given (not None), an existing file also needs ``force``. Errors name the field
    ``name`` and, if given, ``what`` the file is to it ("the signature")."""
    path = Path(path)
    label = f"{field(name)}: {what}" if what else field(name)
    exists = _exists(path, name)
    if exists and path.is_dir():
        raise FieldError(f"{label} {path} is a directory; give a file name")
    base = _first_existing(path.parent)
    if not base.is_dir():
        raise FieldError(f"{label} {path}: cannot write it: {base} is a file, not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise FieldError(f"{label} {path}: cannot write it: no permission to write in {base}")
    if not exists and not path.is_symlink():
        _probe(path.parent, name)
        if len(path.name.encode()) > 255:
            raise FieldError(f"{label} {path} cannot be created: File name too long")
    if (exists or path.is_symlink()) and force is False:  # a symlink, even a dangling one, is replaced only on --force
        raise FieldError(f"{label} {path} already exists; use `force` to replace it")


def check_resumable(out: Path, resume: bool) -> None:
    """The command line's ``--resume`` of a directory that does not exist: nothing to resume (the library's
    ``resume=True`` means "continue it if it is there", which the pipeline's own steps rely on)."""
    if resume and not Path(out).exists():
        raise FieldError(f"`resume`: {out} does not exist, so there is nothing to resume; leave out `resume` "
                         "to start a new one")


def check_output_dir(out: Path, resume: bool, force: bool, marker: Path, what: str) -> bool:
    """Check ``--out``/``--resume``/``--force`` before any work; True when ``out`` holds a run to resume.

    ``marker`` is the file that makes a directory a ``what`` (``manifest.json``, ``plan.json``). Without
    ``--resume`` a non-empty ``out`` needs ``--force``, and ``--force`` only ever replaces a ``what``: the
    caller deletes it once everything else has been checked.
    """
    if resume and force:
        raise FieldError("`resume` and `force` contradict each other; pick one")
    if not out.exists():
        return False
    if not out.is_dir():
        raise FieldError(f"`out` {out} exists and is not a directory")
    has_marker = Path(marker).exists()
    if resume and has_marker:
        return True
    if any(out.iterdir()):
        if resume:
            raise FieldError(f"`resume`: {out} is not empty and holds no {what} (no {Path(marker).name})")
        if not force:
            raise FieldError(f"`out` {out} already exists; use `resume` to continue it or `force` to replace it")
        if not has_marker:
            raise FieldError(f"`force`: {out} is not empty and not a {what}; refusing to delete it")
    return False


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
