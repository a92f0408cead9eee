"""Fetching a named corpus: its pinned files or its pinned archive, downloaded into the cache, verified,
extracted (corpora.py's registry says which corpus has which layout).

* **Files** (PTB): each split a file of its own pinned by SHA-256, fetched one by one or from a tarball.
* **An archive** (:class:`corpora.Archive`): a zip pinned by SHA-256 (the WikiText archives) or whose one
  member is (text8, enwik8, then cut into train/valid/test at the byte offsets their papers use).  seqlm
  extracts the splits into the cache and writes their digests beside them (:data:`MANIFEST`, written last):
  every later load verifies the files against it.  An archive the user placed by hand (in ``--data-dir``,
  ``$SEQLM_DATA`` or the cache) is verified and extracted the same way, with no network.

A download streams into a temporary file beside its destination and takes its name only when whole and
verified: an interrupted transfer, a wrong file or a full disk leave nothing behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import tarfile
import zipfile
from pathlib import Path

from seqlm.errors import SeqlmError
from seqlm.io.files import atomic_write, sha256_file

log = logging.getLogger(__name__)

MANIFEST = "seqlm-corpus.json"  # the digests of the files seqlm extracted into a folder, and where from
BLOCK = 1 << 20


class TransferError(Exception):
    """A download that failed on the way (not an ``OSError``: ``atomic_write`` reads those as a failed write)."""


def verify(path: Path, expected: str) -> None:
    got = sha256_file(path)
    if got != expected:
        raise SeqlmError(f"checksum mismatch for {path} (sha256 {got[:12]}..., expected {expected[:12]}...): "
                         f"the file is corrupt or another version; delete it and rerun to download it again")


def urlopen(url: str):
    import urllib.request  # on use: the HTTP client costs ~25 ms of every start-up otherwise

    return urllib.request.urlopen(url, timeout=30)  # noqa: S310 (the registry's fixed https/http URLs)


def fetch(url: str) -> bytes:
    """The whole body of ``url`` (a small file)."""
    import http.client

    try:
        with urlopen(url) as response:
            return response.read()
    except http.client.HTTPException as e:
        raise TransferError(f"the transfer broke off ({type(e).__name__})") from None


def fetch_to(url: str, path: Path, sha256: str | None) -> None:
    """Stream ``url`` into ``path``; the file takes its name only when the transfer is whole (as long as the
    server said) and its SHA-256 is ``sha256`` (where given)."""
    import http.client

    from seqlm.io.runtime import Progress

    digest, total = hashlib.sha256(), 0
    with atomic_write(path, "wb") as f:
        try:
            with urlopen(url) as response:
                length = response.headers.get("Content-Length")
                with Progress(int(length) if length else None, f"downloading {path.name}", unit="B") as bar:
                    while block := response.read(BLOCK):
                        digest.update(block)
                        f.write(block)
                        total += len(block)
                        bar.update(len(block))
        except (OSError, http.client.HTTPException) as e:
            raise TransferError(getattr(e, "reason", None) or f"the transfer broke off ({type(e).__name__}: {e})") \
                from None
        if length is not None and total != int(length):
            raise TransferError(f"the transfer ended after {total} of {int(length)} bytes")
        if sha256 is not None and digest.hexdigest() != sha256:
            raise TransferError(f"{path.name} has sha256 {digest.hexdigest()[:12]}..., expected {sha256[:12]}...")


FAILURES = (OSError, TransferError, tarfile.TarError, zipfile.BadZipFile, KeyError, ValueError)


def download_files(spec, dest: Path) -> None:
    """Fetch every file of a files-layout ``spec`` into ``dest``, trying each source in turn, verified."""
    errors = []
    for source in spec.sources:
        try:
            _download_from(spec, source, dest)
            return
        except FAILURES as e:  # urllib's URLError is an OSError
            errors.append(_failed(source.url, e))
    names = " ".join(spec.files.values())
    raise SeqlmError(f"could not download corpus {spec.name!r} ({'; '.join(errors)}): "
                     f"put {names} in {dest} or in a folder named by --data-dir / SEQLM_DATA")


def _failed(url: str, e: BaseException) -> str:
    reason = getattr(e, "reason", None) or e
    log.warning("download failed: %s: %s", url, reason)
    return f"{url}: {reason}"


def _download_from(spec, source, dest: Path) -> None:
    blobs: dict[str, bytes] = {}
    if source.member is None:
        for split, fname in spec.files.items():
            log.info("downloading %s", source.url.format(split=split))
            blobs[fname] = fetch(source.url.format(split=split))
    else:
        log.info("downloading %s", source.url)
        with tarfile.open(fileobj=io.BytesIO(fetch(source.url)), mode="r:gz") as tar:
            for split, fname in spec.files.items():
                member = tar.extractfile(source.member.format(split=split))
                if member is None:
                    raise KeyError(source.member.format(split=split))
                blobs[fname] = member.read()
    for fname, blob in blobs.items():
        got = hashlib.sha256(blob).hexdigest()
        if got != spec.sha256[fname]:
            raise ValueError(f"{fname} has sha256 {got[:12]}..., expected {spec.sha256[fname][:12]}...")
    for fname, blob in blobs.items():
        with atomic_write(dest / fname, "wb") as f:
            f.write(blob)


# -- archives -----------------------------------------------------------------------------------
def extracted(spec, folder: Path) -> dict[str, Path] | None:
    """The split files seqlm extracted into ``folder`` for ``spec``, verified against its manifest, or None
    where the folder holds no such set."""
    paths = {split: folder / fname for split, fname in spec.files.items()}
    manifest = folder / MANIFEST
    if not (manifest.is_file() and all(p.is_file() for p in paths.values())):
        return None
    digests = manifest_digests(manifest)
    for p in paths.values():
        if p.name not in digests:
            return None
        verify(p, digests[p.name])
    return paths


def manifest_digests(manifest: Path) -> dict[str, str]:
    try:
        return json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError, TypeError):
        raise SeqlmError(f"{manifest} is damaged: delete it and rerun (the files are extracted again)") from None


def archive_files(spec, folders: list[Path], dest: Path) -> dict[str, Path]:
    """The split files of an archive-layout ``spec``: already extracted (verified) in one of ``folders``;
    else extracted into ``dest`` from the archive found in one of ``folders``, or downloaded into ``dest``."""
    for folder in folders:
        found = extracted(spec, folder)
        if found is not None:
            return found
    with cache_lock(dest):  # one process extracts or downloads into the cache at a time
        found = extracted(spec, dest)  # made by another process while this one looked
        return found if found is not None else _archive_files(spec, folders, dest)


def cache_lock(dest: Path):
    """The lock of a corpus's cache folder while seqlm writes it (io/locks.py): a second process (another rank of a
    torchrun, another run started at once) waits for the first, then finds its files."""
    from seqlm.io.locks import output_lock

    return output_lock(dest, "cache folder (XDG_CACHE_HOME)", wait=True)


def _archive_files(spec, folders: list[Path], dest: Path) -> dict[str, Path]:
    archive = spec.archive
    for folder in folders:
        path = folder / archive.name
        if path.is_file():
            if archive.sha256:
                verify(path, archive.sha256)
            try:
                return extract(spec, path, dest)
            except FAILURES as e:
                raise SeqlmError(f"{path} is not the archive of corpus {spec.name!r} ({e}): delete it and rerun "
                                 f"to download it again") from None
    errors = []
    for url in archive.urls:
        log.info("downloading %s", url)
        try:
            fetch_to(url, dest / archive.name, archive.sha256)
            return extract(spec, dest / archive.name, dest)
        except FAILURES as e:
            errors.append(_failed(url, e))
            (dest / archive.name).unlink(missing_ok=True)  # a whole archive whose member is wrong: not kept
    raise SeqlmError(f"could not download corpus {spec.name!r} ({'; '.join(errors)}): put {archive.name} "
                     f"(from {archive.urls[0]}) in {dest} or in a folder named by --data-dir / SEQLM_DATA")


def extract(spec, path: Path, dest: Path) -> dict[str, Path]:
    """Write the split files of ``spec`` from its archive at ``path`` into ``dest``, then their manifest (a
    failure leaves none of them; a file of that name seqlm did not write is never replaced)."""
    archive = spec.archive
    out = {split: dest / fname for split, fname in spec.files.items()}
    ours = (dest / MANIFEST).is_file() and set(manifest_digests(dest / MANIFEST))
    for p in out.values():
        if p.exists() and not (ours and p.name in ours):
            raise SeqlmError(f"{p} is in the way (seqlm did not extract it): move it away and rerun, or put "
                             f"{archive.name} beside it")
    (dest / MANIFEST).unlink(missing_ok=True)  # the set is remade: until the new manifest, it is not whole
    spans, done = {}, []
    try:
        with zipfile.ZipFile(path) as zf:
            if archive.member is None:
                names = {Path(n).name: n for n in zf.namelist() if not n.endswith("/")}
                for split, member in archive.members.items():
                    if member not in names:
                        raise ValueError(f"{path.name} has no member {member}")
                    with zf.open(names[member]) as src, atomic_write(out[split], "wb") as f:
                        shutil.copyfileobj(src, f, BLOCK)
                    done.append(out[split])
            else:
                data = zf.read(archive.member)
                got = hashlib.sha256(data).hexdigest()
                if archive.member_sha256 and got != archive.member_sha256:
                    raise ValueError(f"{archive.member} in {path.name} has sha256 {got[:12]}..., expected "
                                     f"{archive.member_sha256[:12]}...")
                bounds = cut_points(data, archive.cut)
                for split, a, b in zip(spec.files, bounds, bounds[1:]):
                    with atomic_write(out[split], "wb") as f:
                        f.write(data[a:b])
                    done.append(out[split])
                    spans[split] = [a, b]
        record = {"archive": archive.name, "archive_sha256": sha256_file(path),
                  "files": {p.name: sha256_file(p) for p in out.values()}}
        if spans:
            record["bytes"] = spans  # each split's [start, end) in the member
        with atomic_write(dest / MANIFEST) as f:
            json.dump(record, f, indent=1)
    except BaseException:
        for p in done:
            p.unlink(missing_ok=True)
        raise
    return out


def cut_points(data: bytes, lengths: tuple[int, ...]) -> list[int]:
    """The bounds of the splits of ``data``: the first ``lengths`` bytes each, the rest last; a bound that falls
    inside a UTF-8 character moves back to its first byte (as does the end, past a character cut short), so
    each split is whole text."""
    bounds, at = [0], 0
    for n in lengths:
        at += n
        bounds.append(char_start(data, min(at, len(data))))
    end = len(data)
    last = char_start(data, end - 1) if end else 0
    if end and data[last] >= 0xC0 and last + utf8_length(data[last]) > end:
        end = last  # the text ends inside a character: it is left out
    bounds.append(end)
    return bounds


def char_start(data: bytes, pos: int) -> int:
    """``pos``, or the first byte of the UTF-8 character it falls inside."""
    while 0 < pos < len(data) and data[pos] & 0xC0 == 0x80:
        pos -= 1
    return pos


def utf8_length(lead: int) -> int:
    return 4 if lead >= 0xF0 else 3 if lead >= 0xE0 else 2 if lead >= 0xC0 else 1
